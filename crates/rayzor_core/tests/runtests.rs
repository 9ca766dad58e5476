//! Run-test files (`tests/mir/*.mir` and `tests/fuzz_regressions/*.mir`): MIR text
//! with directives in `;` comments, executed in the interpreter and at every tier.
//! The format is documented in `docs/runtests.md`; `tests/runtests.py` is the
//! Python twin of the directive parser below.
//!
//! `RAYZOR_RUNTEST=<substring>` runs only the files whose path contains it.

use rayzor_core::error::RunError;
use rayzor_core::mir::interp::Interpreter;
use rayzor_core::mir::text::parse_module;
use rayzor_core::mir::{verify, FuncId, Module, Scalar, TrapKind, Type};
use rayzor_core::runtime::osr::OsrMode;
use rayzor_core::runtime::Tier;
use rayzor_core::runtime::{Jit, JitError};
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

// ---------------------------------------------------------------------------
// Directives
// ---------------------------------------------------------------------------

/// Where a file runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Exec {
    Interp,
    Tier(Tier),
    /// Every function at the first tier, transferring into OSR entries of the
    /// second at the first back-edge at which a loop has counted `k`.
    Osr(Tier, Tier, u64),
    /// Every function at the tier, its counting and profiling code sampled at this rate.
    Sampled(Tier, u64),
    /// Every function at the tier, compiled with a made-up profile from this seed.
    RandomProfile(Tier, u64),
    /// Every function at the tier, compiled with the profile the interpreter
    /// recorded on the file's first call only (which the other calls contradict).
    TrainedProfile(Tier),
}

impl fmt::Display for Exec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exec::Interp => f.write_str("interp"),
            Exec::Tier(t) => write!(f, "{t}"),
            Exec::Osr(from, to, k) => write!(f, "OSR {from}->{to} k={k}"),
            Exec::Sampled(t, rate) => write!(f, "{t} sample_rate {rate}"),
            Exec::RandomProfile(t, seed) => write!(f, "{t} random profile {seed}"),
            Exec::TrainedProfile(t) => write!(f, "{t} profile of the first call"),
        }
    }
}

const ALL_EXECS: [Exec; 5] =
    [Exec::Interp, Exec::Tier(Tier::T0), Exec::Tier(Tier::T1), Exec::Tier(Tier::T2), Exec::Tier(Tier::T3)];

/// A literal of a directive, typed later by the function's signature.
#[derive(Clone, Debug, PartialEq)]
enum Lit {
    Int(i128),
    Float(f64),
    Bool(bool),
}

#[derive(Clone, Debug, PartialEq)]
enum Expect {
    /// `; run: f(..)` of a void function.
    Void,
    Value(Lit),
    Trap(TrapKind),
}

#[derive(Clone, Debug, PartialEq)]
struct Call {
    line: usize,
    func: String,
    args: Vec<Lit>,
    expect: Expect,
    /// The directive as written, for messages.
    text: String,
}

#[derive(Debug, Default)]
struct Directives {
    calls: Vec<Call>,
    /// `; error: rule` (line, rule).
    error: Option<(usize, String)>,
    /// `; parse-error: line` (directive line, expected error line).
    parse_error: Option<(usize, usize)>,
    /// `; tiers:` (line, executors).
    tiers: Option<(usize, Vec<Exec>)>,
}

impl Directives {
    fn execs(&self) -> Vec<Exec> {
        self.tiers.as_ref().map_or(ALL_EXECS.to_vec(), |(_, t)| t.clone())
    }
}

fn parse_lit(tok: &str) -> Result<Lit, String> {
    let t = tok.trim();
    match t {
        "true" => return Ok(Lit::Bool(true)),
        "false" => return Ok(Lit::Bool(false)),
        "nan" | "+nan" | "-nan" => return Ok(Lit::Float(f64::NAN)),
        "inf" | "+inf" => return Ok(Lit::Float(f64::INFINITY)),
        "-inf" => return Ok(Lit::Float(f64::NEG_INFINITY)),
        _ => {}
    }
    let (neg, body) = match t.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let int = if let Some(h) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        Some(i128::from_str_radix(&h.replace('_', ""), 16))
    } else if !body.is_empty() && body.chars().all(|c| c.is_ascii_digit() || c == '_') {
        Some(body.replace('_', "").parse::<i128>())
    } else {
        None
    };
    match int {
        Some(Ok(v)) => Ok(Lit::Int(if neg { -v } else { v })),
        Some(Err(e)) => Err(format!("bad integer literal '{t}': {e}")),
        None => t.parse::<f64>().map(Lit::Float).map_err(|_| format!("bad literal '{t}'")),
    }
}

/// Split `a, b, c` at top-level commas (no nesting in literals, so plain split).
fn split_args(s: &str) -> Vec<&str> {
    if s.trim().is_empty() {
        Vec::new()
    } else {
        s.split(',').map(str::trim).collect()
    }
}

fn parse_call(line: usize, body: &str, is_trap: bool) -> Result<Call, String> {
    let (call, expect) = match body.split_once("==") {
        Some((c, e)) => (c.trim(), Some(e.trim())),
        None => (body.trim(), None),
    };
    let open = call.find('(').ok_or("expected 'name(args)'")?;
    if !call.ends_with(')') {
        return Err("expected 'name(args)'".into());
    }
    let func = call[..open].trim();
    if func.is_empty() || !func.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.') {
        return Err(format!("bad function name '{func}'"));
    }
    let args =
        split_args(&call[open + 1..call.len() - 1]).into_iter().map(parse_lit).collect::<Result<_, _>>()?;
    let expect = match (is_trap, expect) {
        (true, Some(k)) => Expect::Trap(
            TrapKind::ALL.into_iter().find(|t| t.name() == k).ok_or(format!("unknown trap kind '{k}'"))?,
        ),
        (true, None) => return Err("a trap directive needs '== <trap kind>'".into()),
        (false, Some(v)) => Expect::Value(parse_lit(v)?),
        (false, None) => Expect::Void,
    };
    Ok(Call { line, func: func.to_string(), args, expect, text: body.trim().to_string() })
}

fn parse_exec(tok: &str) -> Result<Exec, String> {
    ALL_EXECS
        .into_iter()
        .find(|e| e.to_string() == tok)
        .ok_or(format!("unknown executor '{tok}' (interp, T0, T1, T2, T3)"))
}

/// The directives of a file. Only whole-line comments `; key: ...` with a known key
/// are directives; other comments are prose.
fn parse_directives(src: &str) -> Result<Directives, String> {
    let mut d = Directives::default();
    for (i, raw) in src.lines().enumerate() {
        let line = i + 1;
        let Some(comment) = raw.trim_start().strip_prefix(';') else { continue };
        let Some((key, body)) = comment.trim().split_once(':') else { continue };
        let body = body.trim();
        let at = |e: String| format!("line {line}: {e}");
        match key.trim() {
            "run" => d.calls.push(parse_call(line, body, false).map_err(at)?),
            "trap" => d.calls.push(parse_call(line, body, true).map_err(at)?),
            "error" if d.error.is_some() => return Err(at("more than one '; error:'".into())),
            "error" => d.error = Some((line, body.to_string())),
            "parse-error" => {
                let n = body.parse().map_err(|_| at(format!("'{body}' is not a line number")))?;
                if d.parse_error.replace((line, n)).is_some() {
                    return Err(at("more than one '; parse-error:'".into()));
                }
            }
            "tiers" => {
                let execs =
                    body.split_whitespace().map(parse_exec).collect::<Result<Vec<_>, _>>().map_err(at)?;
                if execs.is_empty() {
                    return Err(at("'; tiers:' lists no executor".into()));
                }
                if d.tiers.replace((line, execs)).is_some() {
                    return Err(at("more than one '; tiers:'".into()));
                }
            }
            _ => {}
        }
    }
    let failing = d.error.is_some() as usize + d.parse_error.is_some() as usize;
    if failing + (!d.calls.is_empty()) as usize == 0 {
        return Err("no directives ('; run:', '; trap:', '; error:' or '; parse-error:')".into());
    }
    if failing > 1 || (failing == 1 && !d.calls.is_empty()) {
        return Err("'; error:'/'; parse-error:' cannot be combined with each other or with run/trap".into());
    }
    Ok(d)
}

// ---------------------------------------------------------------------------
// Typing literals
// ---------------------------------------------------------------------------

/// Canonical bits of `lit` as a value of scalar `s`.
fn lit_bits(lit: &Lit, s: Scalar) -> Result<u64, String> {
    match (lit, s) {
        (Lit::Bool(b), Scalar::Bool) => Ok(*b as u64),
        (Lit::Int(v), s) if s.is_int() || s == Scalar::Ptr => {
            let w = s.bits();
            let (lo, hi) = if s.is_signed() {
                (-(1i128 << (w - 1)), (1i128 << (w - 1)) - 1)
            } else {
                (0, (1i128 << w) - 1)
            };
            if *v < lo || *v > hi {
                return Err(format!("{v} is out of range for {s}"));
            }
            Ok(s.canon(*v as u64))
        }
        (Lit::Int(v), Scalar::F64) => Ok((*v as f64).to_bits()),
        (Lit::Int(v), Scalar::F32) => Ok((*v as f32).to_bits() as u64),
        (Lit::Float(x), Scalar::F64) => Ok(x.to_bits()),
        (Lit::Float(x), Scalar::F32) => {
            let y = *x as f32;
            if x.is_finite() && y.is_infinite() {
                return Err(format!("{x} is out of range for f32"));
            }
            Ok(y.to_bits() as u64)
        }
        _ => Err(format!("{lit:?} is not a value of type {s}")),
    }
}

fn scalar_of(ty: &Type, what: &str) -> Result<Scalar, String> {
    ty.scalar().ok_or(format!("{what} has type {ty}: only scalars are supported in directives"))
}

/// A function's id and the argument leaves of a call directive.
fn prepare(m: &Module, c: &Call) -> Result<(FuncId, Vec<u64>), String> {
    let f = m.func_by_name(&c.func).ok_or(format!("no function '{}'", c.func))?;
    let sig = &m.func(f).sig;
    if sig.params.len() != c.args.len() {
        return Err(format!("'{}' takes {} arguments, {} given", c.func, sig.params.len(), c.args.len()));
    }
    let args = sig
        .params
        .iter()
        .zip(&c.args)
        .enumerate()
        .map(|(i, (ty, a))| lit_bits(a, scalar_of(ty, &format!("parameter {i}"))?))
        .collect::<Result<_, _>>()?;
    match (&c.expect, sig.ret.is_void()) {
        (Expect::Void, false) => return Err(format!("'{}' returns {}: say '== <value>'", c.func, sig.ret)),
        (Expect::Value(_), true) => return Err(format!("'{}' returns void", c.func)),
        (Expect::Value(v), false) => {
            lit_bits(v, scalar_of(&sig.ret, "the result")?)?;
        }
        _ => {}
    }
    Ok((f, args))
}

type Outcome = Result<Vec<u64>, TrapKind>;

/// `None` when `got` matches the directive, else why not.
fn mismatch(m: &Module, c: &Call, got: &Outcome) -> Option<String> {
    let f = m.func_by_name(&c.func).unwrap();
    let ret = &m.func(f).sig.ret;
    let show = |o: &Outcome| match o {
        Err(k) => format!("trap {k}"),
        Ok(v) if v.is_empty() => "no value".to_string(),
        Ok(v) => match ret.scalar() {
            Some(Scalar::F64) => format!("{:?} ({:#x})", f64::from_bits(v[0]), v[0]),
            Some(Scalar::F32) => format!("{:?} ({:#x})", f32::from_bits(v[0] as u32), v[0]),
            Some(s) if s.is_signed() => format!("{}", v[0] as i64),
            Some(Scalar::Bool) => format!("{}", v[0] != 0),
            _ => format!("{}", v[0]),
        },
    };
    let ok = match (&c.expect, got) {
        (Expect::Trap(k), Err(g)) => k == g,
        (Expect::Void, Ok(v)) => v.is_empty(),
        (Expect::Value(lit), Ok(v)) if v.len() == 1 => {
            let s = ret.scalar().unwrap();
            let want = lit_bits(lit, s).unwrap();
            match (s, lit) {
                (Scalar::F64, Lit::Float(x)) if x.is_nan() => f64::from_bits(v[0]).is_nan(),
                (Scalar::F32, Lit::Float(x)) if x.is_nan() => f32::from_bits(v[0] as u32).is_nan(),
                _ => want == v[0],
            }
        }
        _ => false,
    };
    (!ok).then(|| format!("got {}", show(got)))
}

// ---------------------------------------------------------------------------
// Running
// ---------------------------------------------------------------------------

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn test_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in ["tests/mir", "tests/fuzz_regressions"] {
        let entries = std::fs::read_dir(repo_root().join(dir)).unwrap_or_else(|e| panic!("{dir}: {e}"));
        for e in entries {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "mir") {
                files.push(p);
            }
        }
    }
    files.sort();
    files
}

fn llvm_built() -> bool {
    cfg!(feature = "llvm")
}

/// Run one file in every executor; push failures as `path:line: executor: message`.
fn run_file(path: &Path, failures: &mut Vec<String>) -> usize {
    run_file_in(path, failures, None)
}

/// Run one file in `execs` (default: the file's own), skipping any its `tiers:` excludes.
fn run_file_in(path: &Path, failures: &mut Vec<String>, execs: Option<&[Exec]>) -> usize {
    let name = path.strip_prefix(repo_root()).unwrap_or(path).display().to_string();
    let src = std::fs::read_to_string(path).unwrap();
    let d = match parse_directives(&src) {
        Ok(d) => d,
        Err(e) => {
            failures.push(format!("{name}: {e}"));
            return 0;
        }
    };
    let mut fail = |line: usize, exec: Option<Exec>, msg: String| {
        let exec = exec.map_or(String::new(), |e| format!(" [{e}]"));
        failures.push(format!("{name}:{line}:{exec} {msg}"));
    };
    let module = match parse_module(&src) {
        Ok(m) => m,
        Err(e) => {
            match d.parse_error {
                Some((_, want)) if want == e.line => {}
                Some((l, want)) => fail(l, None, format!("expected a parse error at line {want}, got: {e}")),
                None => fail(e.line, None, format!("parse error: {e}")),
            }
            return d.parse_error.is_some() as usize;
        }
    };
    if let Some((l, want)) = d.parse_error {
        fail(l, None, format!("expected a parse error at line {want}, but the file parses"));
        return 0;
    }
    let verified = verify::verify_module(&module);
    if let Some((l, rule)) = &d.error {
        match &verified {
            Err(e) if e.rule == rule => {}
            Err(e) => fail(*l, None, format!("expected verifier rule '{rule}', got: {e}")),
            Ok(()) => fail(*l, None, format!("expected verifier rule '{rule}', but the module verifies")),
        }
        // The jit refuses it too, before compiling anything.
        match Jit::new(module, vec![], 1) {
            Err(JitError::Usage(m)) if m.contains(&format!("[{rule}]")) => {}
            Err(e) => {
                fail(*l, Some(Exec::Tier(Tier::T0)), format!("Jit::new: expected '[{rule}]', got: {e}"))
            }
            Ok(_) => fail(*l, Some(Exec::Tier(Tier::T0)), "Jit::new accepted the module".into()),
        }
        return 1;
    }
    if let Err(e) = verified {
        fail(1, None, format!("does not verify: {e}"));
        return 0;
    }
    if !module.externs.is_empty() {
        fail(1, None, "run-test files cannot declare externs (no host functions are bound)".into());
        return 0;
    }
    let prepared: Vec<_> = d
        .calls
        .iter()
        .filter_map(|c| match prepare(&module, c) {
            Ok(p) => Some((c, p)),
            Err(e) => {
                fail(c.line, None, format!("{}: {e}", c.text));
                None
            }
        })
        .collect();
    if prepared.len() != d.calls.len() {
        return 0;
    }
    let mut checked = 0;
    let own = d.execs();
    let execs: Vec<Exec> = match execs {
        None => own,
        Some(list) => list
            .iter()
            .copied()
            .filter(|e| match e {
                Exec::Osr(a, b, _) => own.contains(&Exec::Tier(*a)) && own.contains(&Exec::Tier(*b)),
                Exec::Sampled(t, _) | Exec::RandomProfile(t, _) | Exec::TrainedProfile(t) => {
                    own.contains(&Exec::Tier(*t))
                }
                e => own.contains(e),
            })
            .collect(),
    };
    for exec in execs {
        let needs_t3 = matches!(
            exec,
            Exec::Tier(Tier::T3)
                | Exec::Osr(_, Tier::T3, _)
                | Exec::RandomProfile(Tier::T3, _)
                | Exec::TrainedProfile(Tier::T3)
        );
        if needs_t3 && !llvm_built() {
            continue; // T3 is not part of this build
        }
        let result = catch_unwind(AssertUnwindSafe(|| -> Result<Vec<(usize, String)>, String> {
            let mut wrong = Vec::new();
            let mut check = |c: &Call, got: Outcome| {
                if let Some(why) = mismatch(&module, c, &got) {
                    wrong.push((c.line, format!("{}: {why}", c.text)));
                }
            };
            match exec {
                Exec::Interp => {
                    let mut interp = Interpreter::new(&module);
                    for (c, (f, args)) in &prepared {
                        let got = match interp.call(*f, args) {
                            Ok(v) => Ok(v),
                            Err(RunError::Trap(t)) => Err(t.kind),
                            Err(RunError::Usage(u)) => return Err(format!("usage error: {u}")),
                            Err(other) => return Err(other.to_string()),
                        };
                        check(c, got);
                    }
                }
                Exec::Tier(_)
                | Exec::Osr(..)
                | Exec::Sampled(..)
                | Exec::RandomProfile(..)
                | Exec::TrainedProfile(_) => {
                    let (tier, osr, rate) = match exec {
                        Exec::Osr(from, to, k) => (from, Some((to, k)), 1),
                        Exec::Tier(t) | Exec::RandomProfile(t, _) | Exec::TrainedProfile(t) => (t, None, 1),
                        Exec::Sampled(t, rate) => (t, None, rate),
                        Exec::Interp => unreachable!(),
                    };
                    let mode = if osr.is_some() { OsrMode::Counting } else { OsrMode::Off };
                    let jit = Jit::with_osr(module.clone(), vec![], rate, mode)
                        .map_err(|e| format!("Jit::new: {e}"))?;
                    match exec {
                        Exec::RandomProfile(_, seed) => jit.set_random_profiles(seed),
                        Exec::TrainedProfile(_) => {
                            let (f, args) = &prepared[0].1;
                            jit.train_profile(*f, std::slice::from_ref(args)).map_err(|e| e.to_string())?;
                        }
                        _ => {}
                    }
                    if matches!(exec, Exec::RandomProfile(..) | Exec::TrainedProfile(_)) {
                        // What the profile made of each function must still be valid MIR.
                        for i in 0..module.functions.len() {
                            let f = FuncId(i as u32);
                            let p = jit.profile_for(f);
                            let (opt, _) = rayzor_core::mir::opt::optimize_function_with_profile(
                                &module,
                                f,
                                p.as_deref(),
                            );
                            let mut m2 = module.clone();
                            m2.functions[i] = opt;
                            verify::verify_module(&m2).map_err(|e| {
                                format!(
                                    "'{}' optimised with its profile does not verify: {e}",
                                    module.func(f).name
                                )
                            })?;
                        }
                    }
                    for i in 0..module.functions.len() {
                        let f = FuncId(i as u32);
                        jit.compile(f, tier).map_err(|e| e.to_string())?;
                        if jit.tier_of(f) != Some(tier) {
                            return Err(format!(
                                "'{}' is at {:?} after compiling",
                                module.func(f).name,
                                jit.tier_of(f)
                            ));
                        }
                    }
                    if let Some((to, k)) = osr {
                        jit.force_osr(k, to).map_err(|e| format!("force_osr: {e}"))?;
                    }
                    for (c, (f, args)) in &prepared {
                        let (_, nret) = jit.arity(*f);
                        let mut rets = vec![0u64; nret.max(1)];
                        let got = jit.call(*f, args, &mut rets).map(|()| {
                            rets.truncate(nret);
                            rets
                        });
                        match got {
                            Ok(v) => check(c, Ok(v)),
                            Err(RunError::Trap(t)) => check(c, Err(t.kind)),
                            Err(RunError::Usage(u)) => return Err(format!("usage error: {u}")),
                            Err(other) => return Err(other.to_string()),
                        }
                    }
                }
            }
            Ok(wrong)
        }));
        match result {
            Ok(Ok(wrong)) => {
                checked += prepared.len();
                for (line, msg) in wrong {
                    fail(line, Some(exec), msg);
                }
            }
            Ok(Err(e)) => fail(1, Some(exec), e),
            Err(p) => {
                let msg =
                    p.downcast_ref::<String>().cloned().or(p.downcast_ref::<&str>().map(|s| s.to_string()));
                fail(1, Some(exec), format!("panicked: {}", msg.unwrap_or_default()));
            }
        }
    }
    checked
}

#[test]
fn run_test_files() {
    let start = std::time::Instant::now();
    let filter = std::env::var("RAYZOR_RUNTEST").unwrap_or_default();
    let files: Vec<_> = test_files().into_iter().filter(|p| p.to_string_lossy().contains(&filter)).collect();
    assert!(!files.is_empty(), "no run-test files (filter {filter:?})");
    let mut failures = Vec::new();
    let mut checked = 0;
    for f in &files {
        checked += run_file(f, &mut failures);
    }
    eprintln!(
        "run-tests: {} files, {checked} directive executions (T3 {}), {:.2?}",
        files.len(),
        if llvm_built() { "included" } else { "not built" },
        start.elapsed()
    );
    assert!(failures.is_empty(), "{} run-test failures:\n{}", failures.len(), failures.join("\n"));
}

/// Forced OSR after k back-edges, for every (source, target) tier pair,
/// agrees with the interpreter on every file whose program has a loop.
#[test]
fn forced_osr_agrees_with_the_interpreter() {
    let start = std::time::Instant::now();
    let filter = std::env::var("RAYZOR_RUNTEST").unwrap_or_default();
    let mut execs = Vec::new();
    for (a, b) in [(Tier::T0, Tier::T1), (Tier::T0, Tier::T2), (Tier::T0, Tier::T3), (Tier::T1, Tier::T2)]
        .into_iter()
        .chain([(Tier::T1, Tier::T3), (Tier::T2, Tier::T3)])
    {
        for k in [1, 2, 3, 17, 1000] {
            execs.push(Exec::Osr(a, b, k));
        }
    }
    let files: Vec<_> = test_files()
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(&filter))
        .filter(|p| {
            let m = parse_module(&std::fs::read_to_string(p).unwrap());
            m.is_ok_and(|m| m.functions.iter().any(|f| !rayzor_core::mir::osr::loop_headers(f).is_empty()))
        })
        .collect();
    assert!(!filter.is_empty() || files.len() >= 8, "only {} run-test files have loops", files.len());
    let mut failures = Vec::new();
    let mut checked = 0;
    for f in &files {
        checked += run_file_in(f, &mut failures, Some(&execs));
    }
    eprintln!("forced OSR: {} files with loops, {checked} executions, {:.2?}", files.len(), start.elapsed());
    assert!(failures.is_empty(), "{} forced-OSR failures:\n{}", failures.len(), failures.join("\n"));
}

/// The profiling tiers with sampled counting and profiling code (every
/// other run test counts every event) agree with the interpreter on every file.
#[test]
fn sampled_profiling_agrees_with_the_interpreter() {
    let filter = std::env::var("RAYZOR_RUNTEST").unwrap_or_default();
    let execs = [Exec::Sampled(Tier::T0, 3), Exec::Sampled(Tier::T1, 3), Exec::Sampled(Tier::T1, 16)];
    let mut failures = Vec::new();
    let mut checked = 0;
    for f in test_files().into_iter().filter(|p| p.to_string_lossy().contains(&filter)) {
        checked += run_file_in(&f, &mut failures, Some(&execs));
    }
    assert!(checked > 0);
    assert!(failures.is_empty(), "{} sampled-profiling failures:\n{}", failures.len(), failures.join("\n"));
}

/// T2 and T3 compiled with profiles that later inputs contradict (made up
/// at random, or recorded on the first call of a file only) agree with the
/// interpreter on every file: a profile changes speed, never results.
#[test]
fn profile_guided_tiers_agree_with_the_interpreter() {
    let filter = std::env::var("RAYZOR_RUNTEST").unwrap_or_default();
    let mut execs = vec![Exec::TrainedProfile(Tier::T2), Exec::TrainedProfile(Tier::T3)];
    for seed in [1, 2, 3] {
        execs.extend([Exec::RandomProfile(Tier::T2, seed), Exec::RandomProfile(Tier::T3, seed)]);
    }
    let mut failures = Vec::new();
    let mut checked = 0;
    for f in test_files().into_iter().filter(|p| p.to_string_lossy().contains(&filter)) {
        checked += run_file_in(&f, &mut failures, Some(&execs));
    }
    assert!(checked > 0);
    assert!(failures.is_empty(), "{} profile-guided failures:\n{}", failures.len(), failures.join("\n"));
}

// ---------------------------------------------------------------------------
// The directive parser itself
// ---------------------------------------------------------------------------

#[test]
fn directive_parser() {
    let d = parse_directives("; run: f(1, -2, 0x10, true, -0.0, nan) == -inf\n; tiers: interp T2\n").unwrap();
    let c = &d.calls[0];
    assert_eq!((c.line, c.func.as_str()), (1, "f"));
    assert_eq!(c.args[..4], [Lit::Int(1), Lit::Int(-2), Lit::Int(16), Lit::Bool(true)]);
    assert!(matches!(c.args[4], Lit::Float(x) if x == 0.0 && x.is_sign_negative()));
    assert!(matches!(c.args[5], Lit::Float(x) if x.is_nan()));
    assert_eq!(c.expect, Expect::Value(Lit::Float(f64::NEG_INFINITY)));
    assert_eq!(d.execs(), vec![Exec::Interp, Exec::Tier(Tier::T2)]);
    let d = parse_directives("; prose: ignored\n  ; trap: g() == bad_tag\n; run: h(3)").unwrap();
    assert_eq!(d.calls[0].expect, Expect::Trap(TrapKind::BadTag));
    assert_eq!((d.calls[0].line, d.calls[1].expect.clone()), (2, Expect::Void));
    assert_eq!(d.execs().len(), 5);
    for bad in [
        "; nothing here",
        "; trap: f(1)",
        "; trap: f(1) == overflow",
        "; run: f(1",
        "; run: f(1) == 1\n; error: dominance",
        "; tiers: T4\n; run: f() == 1",
        "; parse-error: x",
    ] {
        assert!(parse_directives(bad).is_err(), "{bad}");
    }
    assert_eq!(lit_bits(&Lit::Int(-1), Scalar::I8), Ok(u64::MAX));
    assert_eq!(lit_bits(&Lit::Int(255), Scalar::U8), Ok(255));
    assert!(lit_bits(&Lit::Int(128), Scalar::I8).is_err());
    assert!(lit_bits(&Lit::Int(-1), Scalar::U64).is_err());
    assert!(lit_bits(&Lit::Float(1e300), Scalar::F32).is_err());
    assert!(lit_bits(&Lit::Float(1.0), Scalar::I32).is_err());
}
