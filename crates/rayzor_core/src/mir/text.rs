//! The MIR text format: a canonical printer and a parser.
//!
//! Printing is canonical: values are renumbered `v0, v1, ...` in order of
//! definition as printed (blocks in index order; each block's parameters,
//! then its instruction results), blocks print as `block<index>`. Every
//! value-defining instruction prints its result type, so the parser never
//! infers types, and `print(parse(print(m))) == print(m)`.
//!
//! Instructions whose kind carries its own type (`const`, `zero`, `cast`,
//! `bitcast`, `load`, `union.make`, `any.get`) take it from the declared
//! result type. When the two disagree (ill-typed modules) or there is no
//! result, the printer writes the kind's type explicitly after the opcode,
//! e.g. `const<i32> 5`, and the parser accepts that form.
//!
//! `;` starts a comment to the end of the line, except inside `[...]`,
//! where it separates an array type's element type from its length.

use super::function::*;
use super::types::{Scalar, Signature, Type};
use crate::mir::layout::MAX_TYPE_DEPTH;

use std::collections::HashMap;
use std::fmt::{self, Write};

// ===================================================================
// Printing
// ===================================================================

/// Names that print quoted even though they are identifiers.
const KEYWORDS: &[&str] = &[
    "void", "bool", "i8", "i16", "i32", "i64", "u8", "u16", "u32", "u64", "f32", "f64", "ptr", "any", "str",
    "fn", "extern", "union", "slice", "true", "false", "inf", "nan",
];

const CANON_NAN_F64: u64 = 0x7ff8_0000_0000_0000;
const CANON_NAN_F32: u32 = 0x7fc0_0000;

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '$'
}

fn is_ident(s: &str) -> bool {
    let mut cs = s.chars();
    match cs.next() {
        Some(c) if is_ident_start(c) => cs.all(is_ident_char),
        _ => false,
    }
}

fn write_str_lit(out: &mut String, bytes: &[u8]) {
    out.push('"');
    for &b in bytes {
        match b {
            b'\n' => out.push_str("\\n"),
            b'\t' => out.push_str("\\t"),
            b'\\' => out.push_str("\\\\"),
            b'"' => out.push_str("\\\""),
            0x20..=0x7e => out.push(b as char),
            _ => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
    out.push('"');
}

fn write_name(out: &mut String, name: &str) {
    if is_ident(name) && !KEYWORDS.contains(&name) {
        out.push_str(name);
    } else {
        write_str_lit(out, name.as_bytes());
    }
}

fn fmt_f64(bits: u64) -> String {
    let x = f64::from_bits(bits);
    if x.is_nan() {
        if bits == CANON_NAN_F64 {
            "nan".into()
        } else {
            format!("nan:0x{bits:x}")
        }
    } else if x.is_infinite() {
        if x > 0.0 { "inf" } else { "-inf" }.into()
    } else {
        let s = format!("{x:?}");
        if s.contains(['.', 'e', 'E']) {
            s
        } else {
            s + ".0"
        }
    }
}

fn fmt_f32(bits: u32) -> String {
    let x = f32::from_bits(bits);
    if x.is_nan() {
        if bits == CANON_NAN_F32 {
            "nan".into()
        } else {
            format!("nan:0x{bits:x}")
        }
    } else if x.is_infinite() {
        if x > 0.0 { "inf" } else { "-inf" }.into()
    } else {
        let s = format!("{x:?}");
        if s.contains(['.', 'e', 'E']) {
            s
        } else {
            s + ".0"
        }
    }
}

fn fmt_int(s: Scalar, bits: u64) -> String {
    let b = s.canon(bits);
    if s.is_signed() {
        (b as i64).to_string()
    } else {
        b.to_string()
    }
}

/// A constant of scalar type `s` (bits are canonicalised first).
fn fmt_const(s: Scalar, bits: u64) -> String {
    let b = s.canon(bits);
    match s {
        Scalar::Bool => if b != 0 { "true" } else { "false" }.into(),
        Scalar::F32 => fmt_f32(b as u32),
        Scalar::F64 => fmt_f64(b),
        Scalar::Ptr => format!("0x{b:x}"),
        _ => fmt_int(s, b),
    }
}

fn write_sig(out: &mut String, sig: &Signature) {
    out.push('(');
    for (i, p) in sig.params.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "{p}");
    }
    let _ = write!(out, ") -> {}", sig.ret);
}

struct Printer<'a> {
    m: &'a Module,
    f: &'a Function,
    /// Printed number of each value's first definition.
    names: HashMap<Value, u32>,
    next: u32,
    out: String,
}

impl Printer<'_> {
    fn val(&mut self, v: Value) {
        match self.names.get(&v) {
            Some(n) => {
                let _ = write!(self.out, "v{n}");
            }
            None => {
                let _ = write!(self.out, "v?{}", v.0);
            }
        }
    }

    fn vals(&mut self, vs: &[Value]) {
        for (i, v) in vs.iter().enumerate() {
            if i > 0 {
                self.out.push_str(", ");
            }
            self.val(*v);
        }
    }

    /// A definition `vN: T`.
    fn def(&mut self, v: Value) {
        let n = self.next;
        self.next += 1;
        let _ = write!(self.out, "v{n}: ");
        match self.f.values.get(v.index()) {
            Some(d) => {
                let _ = write!(self.out, "{}", d.ty);
            }
            None => {
                let _ = write!(self.out, "?missing{}", v.0);
            }
        }
    }

    fn block_call(&mut self, bc: &BlockCall) {
        let _ = write!(self.out, "{}", bc.block);
        if !bc.args.is_empty() {
            self.out.push('(');
            self.vals(&bc.args);
            self.out.push(')');
        }
    }

    fn callee(&mut self, c: Callee) {
        match self.m.callee_name(c) {
            Some(n) => write_name(&mut self.out, n),
            None => {
                let _ = match c {
                    Callee::Func(id) => write!(self.out, "?fn{}", id.0),
                    Callee::Extern(id) => write!(self.out, "?extern{}", id.0),
                };
            }
        }
    }

    /// `<T>` after an opcode when the kind's scalar type is not the result's.
    fn ann_scalar(&mut self, r: Option<&Type>, s: Scalar) {
        if r.and_then(Type::scalar) != Some(s) {
            let _ = write!(self.out, "<{s}>");
        }
    }

    fn ann_type(&mut self, r: Option<&Type>, t: &Type) {
        if r != Some(t) {
            let _ = write!(self.out, "<{t}>");
        }
    }

    fn inst(&mut self, d: &InstData) {
        use InstKind::*;
        self.out.push_str("  ");
        let r: Option<&Type> = d.result.and_then(|v| self.f.values.get(v.index())).map(|vd| &vd.ty);
        if let Some(v) = d.result {
            self.def(v);
            self.out.push_str(" = ");
        }
        match &d.kind {
            Const { ty, bits } => {
                self.out.push_str("const");
                self.ann_scalar(r, *ty);
                let _ = write!(self.out, " {}", fmt_const(*ty, *bits));
            }
            Zero { ty } => {
                self.out.push_str("zero");
                self.ann_type(r, ty);
            }
            Binary { op, lhs, rhs } => {
                let _ = write!(self.out, "{} ", op.name());
                self.vals(&[*lhs, *rhs]);
            }
            Unary { op, arg } => {
                let _ = write!(self.out, "{} ", op.name());
                self.val(*arg);
            }
            Cmp { op, lhs, rhs } => {
                let _ = write!(self.out, "{} ", op.name());
                self.vals(&[*lhs, *rhs]);
            }
            Select { cond, if_true, if_false } => {
                self.out.push_str("select ");
                self.vals(&[*cond, *if_true, *if_false]);
            }
            Fma { a, b, c } => {
                self.out.push_str("fma ");
                self.vals(&[*a, *b, *c]);
            }
            Cast { to, arg } | Bitcast { to, arg } => {
                self.out.push_str(if matches!(d.kind, Cast { .. }) { "cast" } else { "bitcast" });
                self.ann_scalar(r, *to);
                self.out.push(' ');
                self.val(*arg);
            }
            Load { ty, ptr } => {
                self.out.push_str("load");
                self.ann_type(r, ty);
                self.out.push(' ');
                self.val(*ptr);
            }
            Store { ptr, value } => {
                self.out.push_str("store ");
                self.vals(&[*ptr, *value]);
            }
            Alloc { ty, count } => {
                let _ = write!(self.out, "alloc {ty}, ");
                self.val(*count);
            }
            Free { ptr } => {
                self.out.push_str("free ");
                self.val(*ptr);
            }
            MemCopy { dst, src, len } => {
                self.out.push_str("memcpy ");
                self.vals(&[*dst, *src, *len]);
            }
            MemSet { dst, byte, len } => {
                self.out.push_str("memset ");
                self.vals(&[*dst, *byte, *len]);
            }
            FieldAddr { ty, ptr, field } => {
                let _ = write!(self.out, "field {ty}, ");
                self.val(*ptr);
                let _ = write!(self.out, ", {field}");
            }
            ElemAddr { elem, ptr, index } => {
                let _ = write!(self.out, "elem {elem}, ");
                self.vals(&[*ptr, *index]);
            }
            ExtractValue { agg, index } => {
                self.out.push_str("extract ");
                self.val(*agg);
                let _ = write!(self.out, ", {index}");
            }
            InsertValue { agg, index, value } => {
                self.out.push_str("insert ");
                self.val(*agg);
                let _ = write!(self.out, ", {index}, ");
                self.val(*value);
            }
            UnionMake { ty, variant, value } => {
                self.out.push_str("union.make");
                self.ann_type(r, ty);
                let _ = write!(self.out, " {variant}, ");
                self.val(*value);
            }
            UnionTag { arg } => {
                self.out.push_str("union.tag ");
                self.val(*arg);
            }
            UnionGet { variant, arg } => {
                let _ = write!(self.out, "union.get {variant}, ");
                self.val(*arg);
            }
            AnyMake { arg } => {
                self.out.push_str("any.make ");
                self.val(*arg);
            }
            AnyTag { arg } => {
                self.out.push_str("any.tag ");
                self.val(*arg);
            }
            AnyGet { ty, arg } => {
                self.out.push_str("any.get");
                self.ann_scalar(r, *ty);
                self.out.push(' ');
                self.val(*arg);
            }
            StrConst { data } => {
                self.out.push_str("str.const ");
                match self.m.data.get(data.index()) {
                    Some(bytes) => write_str_lit(&mut self.out, bytes),
                    None => {
                        let _ = write!(self.out, "?data{}", data.0);
                    }
                }
            }
            FuncAddr { callee } => {
                self.out.push_str("func.addr ");
                self.callee(*callee);
            }
            Call { callee, args } => {
                self.out.push_str("call ");
                self.callee(*callee);
                self.out.push('(');
                self.vals(args);
                self.out.push(')');
            }
            CallIndirect { callee, args } => {
                self.out.push_str("call_indirect ");
                self.val(*callee);
                self.out.push('(');
                self.vals(args);
                self.out.push(')');
            }
            Jump { dest } => {
                self.out.push_str("jump ");
                self.block_call(dest);
            }
            Brif { cond, then_dest, else_dest } => {
                self.out.push_str("brif ");
                self.val(*cond);
                self.out.push_str(", ");
                self.block_call(then_dest);
                self.out.push_str(", ");
                self.block_call(else_dest);
            }
            Switch { value, cases, default } => {
                self.out.push_str("switch ");
                self.val(*value);
                self.out.push_str(", [");
                let vty = self.f.values.get(value.index()).and_then(|d| match &d.ty {
                    Type::Scalar(s) if s.is_int() => Some(*s),
                    _ => None,
                });
                for (i, (k, bc)) in cases.iter().enumerate() {
                    if i > 0 {
                        self.out.push_str(", ");
                    }
                    match vty {
                        Some(s) => self.out.push_str(&fmt_int(s, *k)),
                        None => {
                            let _ = write!(self.out, "{k}");
                        }
                    }
                    self.out.push_str(": ");
                    self.block_call(bc);
                }
                self.out.push_str("], ");
                self.block_call(default);
            }
            Return { value } => {
                self.out.push_str("ret");
                if let Some(v) = value {
                    self.out.push(' ');
                    self.val(*v);
                }
            }
            DepthCheck => self.out.push_str("depth.check"),
            Trap => self.out.push_str("trap"),
            Unreachable => self.out.push_str("unreachable"),
        }
        self.out.push('\n');
    }
}

/// The text of one function of `m` (callee names and string data come from `m`).
pub fn print_function(m: &Module, f: &Function) -> String {
    // Number the first definition of every value in printing order.
    let mut names = HashMap::new();
    let mut n = 0u32;
    for b in &f.blocks {
        for &p in &b.params {
            names.entry(p).or_insert(n);
            n += 1;
        }
        for &i in &b.insts {
            if let Some(Some(r)) = f.insts.get(i.index()).map(|d| d.result) {
                names.entry(r).or_insert(n);
                n += 1;
            }
        }
    }
    let mut p = Printer { m, f, names, next: 0, out: String::new() };
    p.out.push_str("fn ");
    write_name(&mut p.out, &f.name);
    write_sig(&mut p.out, &f.sig);
    p.out.push_str(" {\n");
    for (bi, b) in f.blocks.iter().enumerate() {
        let _ = write!(p.out, "block{bi}");
        if !b.params.is_empty() {
            p.out.push('(');
            for (i, &v) in b.params.iter().enumerate() {
                if i > 0 {
                    p.out.push_str(", ");
                }
                p.def(v);
            }
            p.out.push(')');
        }
        p.out.push_str(":\n");
        for &i in &b.insts {
            match f.insts.get(i.index()) {
                Some(d) => p.inst(d),
                None => {
                    let _ = writeln!(p.out, "  ?missing_inst{}", i.0);
                }
            }
        }
    }
    p.out.push_str("}\n");
    p.out
}

fn print_extern(e: &ExternFunc) -> String {
    let mut out = String::from("extern fn ");
    write_name(&mut out, &e.name);
    write_sig(&mut out, &e.sig);
    out.push('\n');
    out
}

/// The canonical text of a module: externs, then functions, separated by blank lines.
pub fn print_module(m: &Module) -> String {
    let items: Vec<String> =
        m.externs.iter().map(print_extern).chain(m.functions.iter().map(|f| print_function(m, f))).collect();
    items.join("\n")
}

impl fmt::Display for Module {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&print_module(self))
    }
}

// ===================================================================
// Lexing
// ===================================================================

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Ident(String),
    /// A numeric literal as written (starts with a digit or `-` and a digit).
    Num(String),
    Str(Vec<u8>),
    P(char),
    Arrow,
    Eof,
    /// A lexical error; the parser reports it when it reaches it.
    Err(String),
}

#[derive(Clone, Debug)]
struct Token {
    tok: Tok,
    line: usize,
    col: usize,
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Ident(s) => format!("'{s}'"),
        Tok::Num(s) => format!("number '{s}'"),
        Tok::Str(_) => "string literal".into(),
        Tok::P(c) => format!("'{c}'"),
        Tok::Arrow => "'->'".into(),
        Tok::Eof => "end of input".into(),
        Tok::Err(m) => m.clone(),
    }
}

fn lex(src: &str) -> Vec<Token> {
    let chars: Vec<char> = src.chars().collect();
    let mut toks = Vec::new();
    let (mut i, mut line, mut col) = (0usize, 1usize, 1usize);
    // Inside `[...]`, `;` separates an array's element type from its length;
    // elsewhere it starts a comment.
    let mut brackets = 0usize;
    // Advance over chars[i], tracking the position.
    macro_rules! bump {
        () => {{
            if chars[i] == '\n' {
                line += 1;
                col = 1;
            } else {
                col += 1;
            }
            i += 1;
        }};
    }
    loop {
        // Skip whitespace and comments.
        while i < chars.len() {
            if chars[i].is_whitespace() {
                bump!();
            } else if chars[i] == ';' && brackets == 0 {
                while i < chars.len() && chars[i] != '\n' {
                    bump!();
                }
            } else {
                break;
            }
        }
        let (tl, tc) = (line, col);
        let push = |toks: &mut Vec<Token>, tok: Tok| toks.push(Token { tok, line: tl, col: tc });
        if i >= chars.len() {
            push(&mut toks, Tok::Eof);
            return toks;
        }
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if is_ident_start(c) {
            let mut s = String::new();
            while i < chars.len() && is_ident_char(chars[i]) {
                s.push(chars[i]);
                bump!();
            }
            push(&mut toks, Tok::Ident(s));
        } else if c.is_ascii_digit() || (c == '-' && next.is_some_and(|n| n.is_ascii_digit())) {
            let mut s = String::new();
            s.push(c);
            bump!();
            let hex = s == "-" && chars.get(i..i + 2) == Some(&['0', 'x']) || s == "0" && next == Some('x');
            while i < chars.len() {
                let ch = chars[i];
                let exp_sign = !hex && (ch == '+' || ch == '-') && s.ends_with(['e', 'E']);
                if ch.is_ascii_alphanumeric() || ch == '_' || ch == '.' || exp_sign {
                    s.push(ch);
                    bump!();
                } else {
                    break;
                }
            }
            push(&mut toks, Tok::Num(s));
        } else if c == '"' {
            bump!();
            let mut bytes = Vec::new();
            let mut err = None;
            loop {
                if i >= chars.len() || chars[i] == '\n' {
                    err = Some("unterminated string literal".to_string());
                    break;
                }
                let ch = chars[i];
                bump!();
                match ch {
                    '"' => break,
                    '\\' => {
                        let e = chars.get(i).copied();
                        if e.is_some() && e != Some('\n') {
                            bump!();
                        }
                        match e {
                            Some('n') => bytes.push(b'\n'),
                            Some('t') => bytes.push(b'\t'),
                            Some('r') => bytes.push(b'\r'),
                            Some('0') => bytes.push(0),
                            Some('\\') => bytes.push(b'\\'),
                            Some('"') => bytes.push(b'"'),
                            Some('x') => {
                                let h = chars.get(i..i + 2).map(|h| h.iter().collect::<String>());
                                match h.as_deref().and_then(|h| {
                                    h.chars()
                                        .all(|c| c.is_ascii_hexdigit())
                                        .then(|| u8::from_str_radix(h, 16).ok())?
                                }) {
                                    Some(b) => {
                                        bytes.push(b);
                                        bump!();
                                        bump!();
                                    }
                                    None => {
                                        err = Some(
                                            "expected two hex digits after '\\x' in string literal".into(),
                                        );
                                        break;
                                    }
                                }
                            }
                            Some(other) if other != '\n' => {
                                err = Some(format!("unknown escape '\\{other}' in string literal"));
                                break;
                            }
                            _ => {
                                err = Some("unterminated string literal".into());
                                break;
                            }
                        }
                    }
                    other => {
                        let mut buf = [0u8; 4];
                        bytes.extend_from_slice(other.encode_utf8(&mut buf).as_bytes());
                    }
                }
            }
            match err {
                Some(e) => {
                    push(&mut toks, Tok::Err(e));
                    push(&mut toks, Tok::Eof);
                    return toks;
                }
                None => push(&mut toks, Tok::Str(bytes)),
            }
        } else if c == '-' && next == Some('>') {
            bump!();
            bump!();
            push(&mut toks, Tok::Arrow);
        } else if "()[]{}<>,:=-;".contains(c) {
            bump!();
            if c == '[' {
                brackets += 1;
            } else if c == ']' {
                brackets = brackets.saturating_sub(1);
            }
            push(&mut toks, Tok::P(c));
        } else {
            push(&mut toks, Tok::Err(format!("unexpected character {c:?}")));
            push(&mut toks, Tok::Eof);
            return toks;
        }
    }
}

// ===================================================================
// Parsing
// ===================================================================

type PResult<T> = Result<T, ParseError>;

fn perr(line: usize, column: usize, message: impl Into<String>) -> ParseError {
    ParseError { line, column, message: message.into() }
}

/// `v<digits>`.
fn is_value_name(s: &str) -> bool {
    s.len() > 1 && s.starts_with('v') && s[1..].bytes().all(|b| b.is_ascii_digit())
}

/// `block<digits>` -> the number.
fn block_label(s: &str) -> Option<&str> {
    let d = s.strip_prefix("block")?;
    (!d.is_empty() && d.bytes().all(|b| b.is_ascii_digit())).then_some(d)
}

/// An integer literal (`-`? decimal or `0x` hex) as i128.
fn parse_int_text(s: &str) -> Option<Result<i128, ()>> {
    let (neg, body) = match s.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, s),
    };
    let (radix, digits) = match body.strip_prefix("0x") {
        Some(d) => (16, d),
        None => (10, body),
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let digits = digits.trim_start_matches('0');
    if digits.len() > 40 {
        return Some(Err(()));
    }
    let mag = if digits.is_empty() {
        0
    } else {
        match u128::from_str_radix(digits, radix) {
            Ok(m) => m,
            Err(_) => return Some(Err(())),
        }
    };
    if mag > i128::MAX as u128 {
        return Some(Err(()));
    }
    Some(Ok(if neg { -(mag as i128) } else { mag as i128 }))
}

fn int_range(s: Scalar) -> (i128, i128) {
    let w = s.bits();
    if s.is_signed() {
        (-(1i128 << (w - 1)), (1i128 << (w - 1)) - 1)
    } else {
        (0, (1i128 << w) - 1)
    }
}

struct Pos {
    line: usize,
    col: usize,
}

struct FnState {
    f: Function,
    blocks: HashMap<u32, BlockData>,
    /// Labels in textual order with their positions.
    labels: Vec<(u32, Pos)>,
    cur: Option<u32>,
    defs: HashMap<String, Value>,
    use_ids: HashMap<String, u32>,
    uses: Vec<(String, Pos)>,
    block_uses: Vec<(u32, Pos)>,
    /// (inst, case index, literal, position)
    switch_fix: Vec<(Inst, usize, i128, Pos)>,
}

struct CalleeFix {
    func: usize,
    inst: Inst,
    name: String,
    pos: Pos,
}

struct Parser {
    toks: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn new(src: &str) -> Self {
        Parser { toks: lex(src), pos: 0 }
    }

    fn peek(&self) -> &Token {
        &self.toks[self.pos]
    }

    fn peek_tok(&self, k: usize) -> &Tok {
        &self.toks[(self.pos + k).min(self.toks.len() - 1)].tok
    }

    fn next(&mut self) -> Token {
        let t = self.toks[self.pos].clone();
        if self.pos + 1 < self.toks.len() {
            self.pos += 1;
        }
        t
    }

    /// An error at `t`: its lexical error if it is one, else `msg`.
    fn err_at(t: &Token, msg: impl Into<String>) -> ParseError {
        match &t.tok {
            Tok::Err(m) => perr(t.line, t.col, m.clone()),
            _ => perr(t.line, t.col, msg),
        }
    }

    fn expected(&self, what: &str) -> ParseError {
        let t = self.peek();
        Self::err_at(t, format!("expected {what}, found {}", describe(&t.tok)))
    }

    fn is_p(&self, c: char) -> bool {
        self.peek().tok == Tok::P(c)
    }

    fn eat_p(&mut self, c: char) -> bool {
        if self.is_p(c) {
            self.next();
            true
        } else {
            false
        }
    }

    fn expect_p(&mut self, c: char) -> PResult<()> {
        if self.eat_p(c) {
            Ok(())
        } else {
            Err(self.expected(&format!("'{c}'")))
        }
    }

    fn is_ident(&self, s: &str) -> bool {
        matches!(&self.peek().tok, Tok::Ident(x) if x == s)
    }

    fn expect_ident(&mut self, s: &str) -> PResult<()> {
        if self.is_ident(s) {
            self.next();
            Ok(())
        } else {
            Err(self.expected(&format!("'{s}'")))
        }
    }

    // ----- types -----

    fn parse_type(&mut self) -> PResult<Type> {
        self.parse_type_at(0)
    }

    fn type_list(&mut self, close: char, level: usize) -> PResult<Vec<Type>> {
        let mut out = Vec::new();
        if self.eat_p(close) {
            return Ok(out);
        }
        loop {
            out.push(self.parse_type_at(level)?);
            if self.eat_p(close) {
                return Ok(out);
            }
            if !self.eat_p(',') {
                return Err(self.expected(&format!("',' or '{close}'")));
            }
        }
    }

    /// `level` is the number of enclosing type constructors.
    fn parse_type_at(&mut self, level: usize) -> PResult<Type> {
        let t = self.peek().clone();
        let constructor = match &t.tok {
            Tok::P('[') | Tok::P('{') => true,
            Tok::Ident(s) => matches!(s.as_str(), "slice" | "union" | "fn" | "extern"),
            _ => false,
        };
        if constructor && level >= MAX_TYPE_DEPTH {
            return Err(perr(t.line, t.col, format!("type nesting deeper than {MAX_TYPE_DEPTH} levels")));
        }
        let inner = level + 1;
        match &t.tok {
            Tok::P('[') => {
                self.next();
                let e = self.parse_type_at(inner)?;
                self.expect_p(';')?;
                let n = self.parse_u32("array length")?;
                self.expect_p(']')?;
                Ok(Type::Array(Box::new(e), n))
            }
            Tok::P('{') => {
                self.next();
                Ok(Type::Struct(self.type_list('}', inner)?))
            }
            Tok::Ident(s) => {
                let s = s.clone();
                match s.as_str() {
                    "void" => {
                        self.next();
                        Ok(Type::Void)
                    }
                    "any" => {
                        self.next();
                        Ok(Type::Any)
                    }
                    "str" => {
                        self.next();
                        Ok(Type::Str)
                    }
                    "slice" => {
                        self.next();
                        self.expect_p('<')?;
                        let e = self.parse_type_at(inner)?;
                        self.expect_p('>')?;
                        Ok(Type::Slice(Box::new(e)))
                    }
                    "union" => {
                        self.next();
                        self.expect_p('<')?;
                        Ok(Type::Union(self.type_list('>', inner)?))
                    }
                    "fn" | "extern" => {
                        self.next();
                        let host = s == "extern";
                        if host {
                            self.expect_ident("fn")?;
                        }
                        self.expect_p('(')?;
                        let params = self.type_list(')', inner)?;
                        if !matches!(self.peek().tok, Tok::Arrow) {
                            return Err(self.expected("'->'"));
                        }
                        self.next();
                        let ret = self.parse_type_at(inner)?;
                        Ok(Type::FnPtr { sig: Box::new(Signature::new(params, ret)), host })
                    }
                    _ => match Scalar::from_name(&s) {
                        Some(sc) => {
                            self.next();
                            Ok(Type::Scalar(sc))
                        }
                        None => Err(Self::err_at(&t, format!("expected a type, found '{s}'"))),
                    },
                }
            }
            _ => Err(self.expected("a type")),
        }
    }

    // ----- literals -----

    fn parse_int_lit(&mut self, what: &str) -> PResult<(i128, Token)> {
        let t = self.peek().clone();
        if let Tok::Num(s) = &t.tok {
            match parse_int_text(s) {
                Some(Ok(v)) => {
                    self.next();
                    return Ok((v, t));
                }
                Some(Err(())) => return Err(perr(t.line, t.col, format!("{what} '{s}' is out of range"))),
                None => {}
            }
        }
        Err(self.expected(&format!("{what} (an integer)")))
    }

    fn parse_u32(&mut self, what: &str) -> PResult<u32> {
        let (v, t) = self.parse_int_lit(what)?;
        u32::try_from(v).map_err(|_| perr(t.line, t.col, format!("{what} {v} is out of range for u32")))
    }

    fn parse_const(&mut self, s: Scalar) -> PResult<u64> {
        let t = self.peek().clone();
        match s {
            Scalar::Bool => match &t.tok {
                Tok::Ident(x) if x == "true" || x == "false" => {
                    self.next();
                    Ok((x == "true") as u64)
                }
                _ => Err(self.expected("'true' or 'false'")),
            },
            Scalar::F32 | Scalar::F64 => self.parse_float(s),
            _ => {
                let (v, t) = self.parse_int_lit(&format!("{s} constant"))?;
                let (lo, hi) = if s == Scalar::Ptr { (0, u64::MAX as i128) } else { int_range(s) };
                if v < lo || v > hi {
                    return Err(perr(t.line, t.col, format!("constant {v} is out of range for {s}")));
                }
                Ok(s.canon(v as u64))
            }
        }
    }

    fn parse_float(&mut self, s: Scalar) -> PResult<u64> {
        let t = self.peek().clone();
        let f32t = s == Scalar::F32;
        let inf = |neg: bool| -> u64 {
            if f32t {
                (if neg { f32::NEG_INFINITY } else { f32::INFINITY }).to_bits() as u64
            } else {
                (if neg { f64::NEG_INFINITY } else { f64::INFINITY }).to_bits()
            }
        };
        match &t.tok {
            Tok::Ident(x) if x == "inf" => {
                self.next();
                Ok(inf(false))
            }
            Tok::P('-') if matches!(self.peek_tok(1), Tok::Ident(x) if x == "inf") => {
                self.next();
                self.next();
                Ok(inf(true))
            }
            Tok::Ident(x) if x == "nan" => {
                self.next();
                if !self.eat_p(':') {
                    return Ok(if f32t { CANON_NAN_F32 as u64 } else { CANON_NAN_F64 });
                }
                let (v, bt) = self.parse_int_lit("NaN bit pattern")?;
                let ok = if f32t {
                    (0..=u32::MAX as i128).contains(&v) && f32::from_bits(v as u32).is_nan()
                } else {
                    (0..=u64::MAX as i128).contains(&v) && f64::from_bits(v as u64).is_nan()
                };
                if !ok {
                    return Err(perr(bt.line, bt.col, format!("{v:#x} is not a NaN bit pattern of {s}")));
                }
                Ok(v as u64)
            }
            Tok::Num(x) => {
                let bad = || perr(t.line, t.col, format!("invalid {s} literal '{x}'"));
                let range = || perr(t.line, t.col, format!("{s} literal '{x}' is out of range"));
                if x.contains("0x") || x.contains('_') {
                    return Err(bad());
                }
                let bits = if f32t {
                    let v: f32 = x.parse().map_err(|_| bad())?;
                    if v.is_infinite() {
                        return Err(range());
                    }
                    v.to_bits() as u64
                } else {
                    let v: f64 = x.parse().map_err(|_| bad())?;
                    if v.is_infinite() {
                        return Err(range());
                    }
                    v.to_bits()
                };
                self.next();
                Ok(bits)
            }
            _ => Err(self.expected(&format!("a {s} constant"))),
        }
    }

    fn parse_name(&mut self, what: &str) -> PResult<(String, Token)> {
        let t = self.peek().clone();
        match &t.tok {
            Tok::Ident(s) => {
                self.next();
                Ok((s.clone(), t))
            }
            Tok::Str(b) => match String::from_utf8(b.clone()) {
                Ok(s) => {
                    self.next();
                    Ok((s, t))
                }
                Err(_) => Err(perr(t.line, t.col, format!("{what} is not valid UTF-8"))),
            },
            _ => Err(self.expected(what)),
        }
    }

    fn parse_sig(&mut self) -> PResult<Signature> {
        self.expect_p('(')?;
        let params = self.type_list(')', 0)?;
        let ret = if matches!(self.peek().tok, Tok::Arrow) {
            self.next();
            self.parse_type()?
        } else {
            Type::Void
        };
        Ok(Signature::new(params, ret))
    }

    // ----- module -----

    fn parse_module(&mut self) -> PResult<Module> {
        let mut m = Module::new();
        let mut fixes = Vec::new();
        loop {
            let t = self.peek().clone();
            match &t.tok {
                Tok::Eof => break,
                Tok::Ident(s) if s == "extern" => {
                    self.next();
                    self.expect_ident("fn")?;
                    let (name, _) = self.parse_name("extern function name")?;
                    let sig = self.parse_sig()?;
                    m.externs.push(ExternFunc { name, sig });
                }
                Tok::Ident(s) if s == "fn" => {
                    self.next();
                    let f = self.parse_function(&mut m, &mut fixes)?;
                    m.functions.push(f);
                }
                _ => return Err(self.expected("'fn' or 'extern fn'")),
            }
        }
        for fx in fixes {
            let callee = match (m.func_by_name(&fx.name), m.extern_by_name(&fx.name)) {
                (Some(f), _) => Callee::Func(f),
                (None, Some(e)) => Callee::Extern(e),
                (None, None) => {
                    return Err(perr(fx.pos.line, fx.pos.col, format!("unknown function '{}'", fx.name)))
                }
            };
            match &mut m.functions[fx.func].insts[fx.inst.index()].kind {
                InstKind::Call { callee: c, .. } | InstKind::FuncAddr { callee: c } => *c = callee,
                _ => {}
            }
        }
        Ok(m)
    }

    fn parse_function(&mut self, m: &mut Module, fixes: &mut Vec<CalleeFix>) -> PResult<Function> {
        let (name, _) = self.parse_name("function name")?;
        let sig = self.parse_sig()?;
        self.expect_p('{')?;
        let func_index = m.functions.len();
        let mut st = FnState {
            f: Function { name, sig, blocks: Vec::new(), insts: Vec::new(), values: Vec::new() },
            blocks: HashMap::new(),
            labels: Vec::new(),
            cur: None,
            defs: HashMap::new(),
            use_ids: HashMap::new(),
            uses: Vec::new(),
            block_uses: Vec::new(),
            switch_fix: Vec::new(),
        };
        let close;
        loop {
            let t = self.peek().clone();
            match &t.tok {
                Tok::P('}') => {
                    close = Pos { line: t.line, col: t.col };
                    self.next();
                    break;
                }
                Tok::Ident(s)
                    if block_label(s).is_some() && matches!(self.peek_tok(1), Tok::P('(') | Tok::P(':')) =>
                {
                    self.parse_label(&mut st)?;
                }
                Tok::Ident(s) if is_value_name(s) && self.peek_tok(1) == &Tok::P(':') => {
                    let s = s.clone();
                    self.next();
                    self.next();
                    let ty = self.parse_type()?;
                    self.expect_p('=')?;
                    let cur = self.need_block(&st, &t)?;
                    let inst = Inst(st.f.insts.len() as u32);
                    let kind = self.parse_inst(&mut st, m, fixes, func_index, Some(&ty))?;
                    let result = if ty.is_void() {
                        None
                    } else {
                        let v = Value(st.f.values.len() as u32);
                        st.f.values.push(ValueData { ty, def: ValueDef::Result(inst) });
                        Self::define(&mut st, &s, &t, v)?;
                        Some(v)
                    };
                    st.f.insts.push(InstData { kind, result, origin: None });
                    st.blocks.get_mut(&cur).expect("current block exists").insts.push(inst);
                }
                Tok::Ident(_) => {
                    let cur = self.need_block(&st, &t)?;
                    let inst = Inst(st.f.insts.len() as u32);
                    let kind = self.parse_inst(&mut st, m, fixes, func_index, None)?;
                    st.f.insts.push(InstData { kind, result: None, origin: None });
                    st.blocks.get_mut(&cur).expect("current block exists").insts.push(inst);
                }
                _ => return Err(self.expected("an instruction, a block label or '}'")),
            }
        }
        self.finish_function(st, close)
    }

    fn need_block(&self, st: &FnState, t: &Token) -> PResult<u32> {
        st.cur.ok_or_else(|| {
            perr(t.line, t.col, "expected a block label (e.g. 'block0:') before the first instruction")
        })
    }

    fn define(st: &mut FnState, name: &str, t: &Token, v: Value) -> PResult<()> {
        if st.defs.contains_key(name) {
            return Err(perr(t.line, t.col, format!("duplicate definition of value '{name}'")));
        }
        st.defs.insert(name.to_string(), v);
        Ok(())
    }

    fn parse_label(&mut self, st: &mut FnState) -> PResult<()> {
        let t = self.next();
        let Tok::Ident(s) = &t.tok else { unreachable!("checked by caller") };
        let n: u32 = block_label(s)
            .and_then(|d| d.parse().ok())
            .ok_or_else(|| perr(t.line, t.col, format!("block label '{s}' is out of range")))?;
        if st.blocks.contains_key(&n) {
            return Err(perr(t.line, t.col, format!("duplicate block label 'block{n}'")));
        }
        st.blocks.insert(n, BlockData::default());
        st.labels.push((n, Pos { line: t.line, col: t.col }));
        st.cur = Some(n);
        if self.eat_p('(') {
            let mut first = true;
            while !self.eat_p(')') {
                if !first && !self.eat_p(',') {
                    return Err(self.expected("',' or ')'"));
                }
                first = false;
                let vt = self.peek().clone();
                let name = match &vt.tok {
                    Tok::Ident(x) if is_value_name(x) => x.clone(),
                    _ => return Err(self.expected("a block parameter name (vN)")),
                };
                self.next();
                self.expect_p(':')?;
                let ty = self.parse_type()?;
                let bd = st.blocks.get_mut(&n).expect("just inserted");
                let v = Value(st.f.values.len() as u32);
                st.f.values.push(ValueData { ty, def: ValueDef::Param(Block(n), bd.params.len() as u32) });
                bd.params.push(v);
                Self::define(st, &name, &vt, v)?;
            }
        }
        self.expect_p(':')
    }

    fn finish_function(&mut self, mut st: FnState, close: Pos) -> PResult<Function> {
        let n = st.labels.len();
        if let Some((bad, p)) = st.labels.iter().find(|(l, _)| *l as usize >= n) {
            let missing = (0..n as u32).find(|k| !st.blocks.contains_key(k)).unwrap_or(0);
            return Err(perr(
                p.line,
                p.col,
                format!(
                    "block labels must be block0..block{} each exactly once: found 'block{bad}', 'block{missing}' is missing",
                    n.saturating_sub(1)
                ),
            ));
        }
        for (b, p) in &st.block_uses {
            if *b as usize >= n {
                return Err(perr(p.line, p.col, format!("unknown block 'block{b}'")));
            }
        }
        let mut blocks: Vec<BlockData> =
            (0..n as u32).map(|k| st.blocks.remove(&k).expect("labels checked")).collect();
        if let Some(entry) = blocks.first() {
            let tys: Vec<&Type> = entry.params.iter().map(|v| &st.f.values[v.index()].ty).collect();
            if tys.len() != st.f.sig.params.len() || tys.iter().zip(&st.f.sig.params).any(|(a, b)| *a != b) {
                let p = st.labels.iter().find(|(l, _)| *l == 0).map(|(_, p)| p).unwrap_or(&close);
                let list = |ts: Vec<String>| ts.join(", ");
                return Err(perr(
                    p.line,
                    p.col,
                    format!(
                        "entry block parameters ({}) do not match the function parameters ({})",
                        list(tys.iter().map(|t| t.to_string()).collect()),
                        list(st.f.sig.params.iter().map(|t| t.to_string()).collect())
                    ),
                ));
            }
        }
        // Resolve value uses.
        let mut resolved = Vec::with_capacity(st.uses.len());
        for (name, p) in &st.uses {
            match st.defs.get(name) {
                Some(v) => resolved.push(*v),
                None => return Err(perr(p.line, p.col, format!("unknown value '{name}'"))),
            }
        }
        for d in &mut st.f.insts {
            d.kind.map_operands(|v| resolved[v.index()]);
        }
        // Switch case constants take the switch value's type.
        for (inst, ci, lit, p) in &st.switch_fix {
            let vals = &st.f.values;
            if let InstKind::Switch { value, cases, .. } = &mut st.f.insts[inst.index()].kind {
                let bits = match &vals[value.index()].ty {
                    Type::Scalar(s) if s.is_int() => {
                        let (lo, hi) = int_range(*s);
                        if *lit < lo || *lit > hi {
                            return Err(perr(
                                p.line,
                                p.col,
                                format!("case value {lit} is out of range for {s}"),
                            ));
                        }
                        s.canon(*lit as u64)
                    }
                    _ => {
                        if !(0..=u64::MAX as i128).contains(lit) {
                            return Err(perr(p.line, p.col, format!("case value {lit} is out of range")));
                        }
                        *lit as u64
                    }
                };
                cases[*ci].0 = bits;
            }
        }
        st.f.blocks = std::mem::take(&mut blocks);
        Ok(st.f)
    }

    // ----- instructions -----

    fn use_value(&mut self, st: &mut FnState) -> PResult<Value> {
        let t = self.peek().clone();
        match &t.tok {
            Tok::Ident(s) if is_value_name(s) => {
                self.next();
                let id = match st.use_ids.get(s) {
                    Some(id) => *id,
                    None => {
                        let id = st.uses.len() as u32;
                        st.uses.push((s.clone(), Pos { line: t.line, col: t.col }));
                        st.use_ids.insert(s.clone(), id);
                        id
                    }
                };
                Ok(Value(id))
            }
            _ => Err(self.expected("a value (vN)")),
        }
    }

    fn comma(&mut self) -> PResult<()> {
        self.expect_p(',')
    }

    fn value_list(&mut self, st: &mut FnState) -> PResult<Vec<Value>> {
        self.expect_p('(')?;
        let mut out = Vec::new();
        if self.eat_p(')') {
            return Ok(out);
        }
        loop {
            out.push(self.use_value(st)?);
            if self.eat_p(')') {
                return Ok(out);
            }
            if !self.eat_p(',') {
                return Err(self.expected("',' or ')'"));
            }
        }
    }

    fn block_call(&mut self, st: &mut FnState) -> PResult<BlockCall> {
        let t = self.peek().clone();
        let n = match &t.tok {
            Tok::Ident(s) => match block_label(s) {
                Some(d) => {
                    d.parse::<u32>().map_err(|_| perr(t.line, t.col, format!("unknown block '{s}'")))?
                }
                None => return Err(self.expected("a block (blockN)")),
            },
            _ => return Err(self.expected("a block (blockN)")),
        };
        self.next();
        st.block_uses.push((n, Pos { line: t.line, col: t.col }));
        let args = if self.is_p('(') { self.value_list(st)? } else { Vec::new() };
        Ok(BlockCall { block: Block(n), args })
    }

    /// The explicit `<T>` after an opcode, if any.
    fn annotation(&mut self) -> PResult<Option<(Type, Token)>> {
        if self.is_p('<') {
            self.next();
            let t = self.peek().clone();
            let ty = self.parse_type()?;
            self.expect_p('>')?;
            Ok(Some((ty, t)))
        } else {
            Ok(None)
        }
    }

    fn scalar_of(&mut self, op: &Token, opname: &str, r: Option<&Type>) -> PResult<Scalar> {
        match self.annotation()? {
            Some((Type::Scalar(s), _)) => Ok(s),
            Some((ty, t)) => Err(perr(t.line, t.col, format!("expected a scalar type, found '{ty}'"))),
            None => match r {
                Some(ty) => ty.scalar().ok_or_else(|| {
                    perr(op.line, op.col, format!("'{opname}' needs a scalar result type, found '{ty}'"))
                }),
                None => Err(perr(
                    op.line,
                    op.col,
                    format!("'{opname}' without a result needs an explicit type ('{opname}<T>')"),
                )),
            },
        }
    }

    fn type_of(&mut self, op: &Token, opname: &str, r: Option<&Type>) -> PResult<Type> {
        match self.annotation()? {
            Some((ty, _)) => Ok(ty),
            None => r.cloned().ok_or_else(|| {
                perr(
                    op.line,
                    op.col,
                    format!("'{opname}' without a result needs an explicit type ('{opname}<T>')"),
                )
            }),
        }
    }

    fn parse_inst(
        &mut self,
        st: &mut FnState,
        m: &mut Module,
        fixes: &mut Vec<CalleeFix>,
        func: usize,
        r: Option<&Type>,
    ) -> PResult<InstKind> {
        use InstKind::*;
        let op = self.peek().clone();
        let name = match &op.tok {
            Tok::Ident(s) => s.clone(),
            _ => return Err(self.expected("an instruction")),
        };
        self.next();
        let inst = Inst(st.f.insts.len() as u32);
        if let Some(b) = BinOp::ALL.iter().find(|b| b.name() == name) {
            let lhs = self.use_value(st)?;
            self.comma()?;
            let rhs = self.use_value(st)?;
            return Ok(Binary { op: *b, lhs, rhs });
        }
        if let Some(c) = CmpOp::ALL.iter().find(|c| c.name() == name) {
            let lhs = self.use_value(st)?;
            self.comma()?;
            let rhs = self.use_value(st)?;
            return Ok(Cmp { op: *c, lhs, rhs });
        }
        if let Some(u) = UnOp::ALL.iter().find(|u| u.name() == name) {
            let arg = self.use_value(st)?;
            return Ok(Unary { op: *u, arg });
        }
        Ok(match name.as_str() {
            "const" => {
                let ty = self.scalar_of(&op, &name, r)?;
                let bits = self.parse_const(ty)?;
                Const { ty, bits }
            }
            "zero" => Zero { ty: self.type_of(&op, &name, r)? },
            "select" => {
                let cond = self.use_value(st)?;
                self.comma()?;
                let if_true = self.use_value(st)?;
                self.comma()?;
                let if_false = self.use_value(st)?;
                Select { cond, if_true, if_false }
            }
            "fma" => {
                let a = self.use_value(st)?;
                self.comma()?;
                let b = self.use_value(st)?;
                self.comma()?;
                let c = self.use_value(st)?;
                Fma { a, b, c }
            }
            "cast" | "bitcast" => {
                let to = self.scalar_of(&op, &name, r)?;
                let arg = self.use_value(st)?;
                if name == "cast" {
                    Cast { to, arg }
                } else {
                    Bitcast { to, arg }
                }
            }
            "load" => {
                let ty = self.type_of(&op, &name, r)?;
                Load { ty, ptr: self.use_value(st)? }
            }
            "store" => {
                let ptr = self.use_value(st)?;
                self.comma()?;
                Store { ptr, value: self.use_value(st)? }
            }
            "alloc" => {
                let ty = self.parse_type()?;
                self.comma()?;
                Alloc { ty, count: self.use_value(st)? }
            }
            "free" => Free { ptr: self.use_value(st)? },
            "memcpy" | "memset" => {
                let a = self.use_value(st)?;
                self.comma()?;
                let b = self.use_value(st)?;
                self.comma()?;
                let len = self.use_value(st)?;
                if name == "memcpy" {
                    MemCopy { dst: a, src: b, len }
                } else {
                    MemSet { dst: a, byte: b, len }
                }
            }
            "field" => {
                let ty = self.parse_type()?;
                self.comma()?;
                let ptr = self.use_value(st)?;
                self.comma()?;
                FieldAddr { ty, ptr, field: self.parse_u32("field index")? }
            }
            "elem" => {
                let elem = self.parse_type()?;
                self.comma()?;
                let ptr = self.use_value(st)?;
                self.comma()?;
                ElemAddr { elem, ptr, index: self.use_value(st)? }
            }
            "extract" => {
                let agg = self.use_value(st)?;
                self.comma()?;
                ExtractValue { agg, index: self.parse_u32("index")? }
            }
            "insert" => {
                let agg = self.use_value(st)?;
                self.comma()?;
                let index = self.parse_u32("index")?;
                self.comma()?;
                InsertValue { agg, index, value: self.use_value(st)? }
            }
            "union.make" => {
                let ty = self.type_of(&op, &name, r)?;
                let variant = self.parse_u32("variant")?;
                self.comma()?;
                UnionMake { ty, variant, value: self.use_value(st)? }
            }
            "union.tag" => UnionTag { arg: self.use_value(st)? },
            "union.get" => {
                let variant = self.parse_u32("variant")?;
                self.comma()?;
                UnionGet { variant, arg: self.use_value(st)? }
            }
            "any.make" => AnyMake { arg: self.use_value(st)? },
            "any.tag" => AnyTag { arg: self.use_value(st)? },
            "any.get" => {
                let ty = self.scalar_of(&op, &name, r)?;
                AnyGet { ty, arg: self.use_value(st)? }
            }
            "str.const" => match &self.peek().tok {
                Tok::Str(b) => {
                    let data = m.add_data(b);
                    self.next();
                    StrConst { data }
                }
                _ => return Err(self.expected("a string literal")),
            },
            "func.addr" | "call" => {
                let (cname, ct) = self.parse_name("a function name")?;
                fixes.push(CalleeFix { func, inst, name: cname, pos: Pos { line: ct.line, col: ct.col } });
                let callee = Callee::Func(FuncId(0));
                if name == "call" {
                    Call { callee, args: self.value_list(st)? }
                } else {
                    FuncAddr { callee }
                }
            }
            "call_indirect" => {
                let callee = self.use_value(st)?;
                CallIndirect { callee, args: self.value_list(st)? }
            }
            "jump" => Jump { dest: self.block_call(st)? },
            "brif" => {
                let cond = self.use_value(st)?;
                self.comma()?;
                let then_dest = self.block_call(st)?;
                self.comma()?;
                Brif { cond, then_dest, else_dest: self.block_call(st)? }
            }
            "switch" => {
                let value = self.use_value(st)?;
                self.comma()?;
                self.expect_p('[')?;
                let mut cases = Vec::new();
                if !self.eat_p(']') {
                    loop {
                        let (lit, lt) = self.parse_int_lit("case value")?;
                        self.expect_p(':')?;
                        let bc = self.block_call(st)?;
                        st.switch_fix.push((inst, cases.len(), lit, Pos { line: lt.line, col: lt.col }));
                        cases.push((0, bc));
                        if self.eat_p(']') {
                            break;
                        }
                        if !self.eat_p(',') {
                            return Err(self.expected("',' or ']'"));
                        }
                    }
                }
                self.comma()?;
                Switch { value, cases, default: self.block_call(st)? }
            }
            "ret" => {
                let has_value = matches!(&self.peek().tok, Tok::Ident(s) if is_value_name(s))
                    && self.peek_tok(1) != &Tok::P(':');
                Return { value: if has_value { Some(self.use_value(st)?) } else { None } }
            }
            "depth.check" => DepthCheck,
            "trap" => Trap,
            "unreachable" => Unreachable,
            _ => return Err(perr(op.line, op.col, format!("unknown instruction '{name}'"))),
        })
    }
}

/// Parse a module from MIR text.
pub fn parse_module(src: &str) -> Result<Module, ParseError> {
    Parser::new(src).parse_module()
}

/// Parse a single type, e.g. `{i32, [f64; 4]}`.
pub fn parse_type(src: &str) -> Result<Type, ParseError> {
    let mut p = Parser::new(src);
    let ty = p.parse_type()?;
    if p.peek().tok != Tok::Eof {
        return Err(p.expected("end of input after the type"));
    }
    Ok(ty)
}

/// A syntax or name error in MIR text, with a 1-based line and column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}: {}", self.line, self.column, self.message)
    }
}

impl std::error::Error for ParseError {}

#[cfg(test)]
mod tests {
    use super::*;

    /// `text` is canonical: it parses, prints back identically, and stays fixed.
    fn roundtrip(text: &str) -> Module {
        let m = parse_module(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let printed = print_module(&m);
        assert_eq!(printed, text, "printed:\n{printed}");
        let m2 = parse_module(&printed).unwrap();
        assert_eq!(print_module(&m2), printed);
        m
    }

    /// print(parse(print(m))) == print(m).
    fn stable(m: &Module) -> String {
        let p = print_module(m);
        let m2 = parse_module(&p).unwrap_or_else(|e| panic!("{e}\n{p}"));
        assert_eq!(print_module(&m2), p);
        p
    }

    fn err(src: &str) -> ParseError {
        match parse_module(src) {
            Ok(m) => panic!("expected an error, parsed:\n{m}"),
            Err(e) => e,
        }
    }

    const FIB: &str = "\
extern fn puts(ptr) -> i32

fn fib(i64) -> i64 {
block0(v0: i64):
  v1: i64 = const 2
  v2: bool = lt v0, v1
  brif v2, block1, block2
block1:
  ret v0
block2:
  v3: i64 = const 1
  v4: i64 = sub v0, v3
  v5: i64 = call fib(v4)
  v6: i64 = sub v4, v3
  v7: i64 = call fib(v6)
  v8: i64 = add v5, v7
  ret v8
}
";

    #[test]
    fn fib_roundtrip() {
        let m = roundtrip(FIB);
        assert_eq!(m.functions[0].blocks.len(), 3);
        assert_eq!(m.functions[0].values.len(), 9);
        assert!(matches!(
            m.functions[0].insts[6].kind,
            InstKind::Call { callee: Callee::Func(FuncId(0)), .. }
        ));
        assert_eq!(m.to_string(), FIB);
    }

    const ALL: &str = r#"extern fn puts(ptr) -> i32

extern fn "extern"(str, any) -> void

extern fn "weird name\n\x00\xc3\xbf"() -> void

fn all(i64, ptr, {i32, f64}, union<i32, f64>) -> i64 {
block0(v0: i64, v1: ptr, v2: {i32, f64}, v3: union<i32, f64>):
  v4: i64 = const -42
  v5: u64 = const 18446744073709551615
  v6: bool = const true
  v7: bool = const false
  v8: ptr = const 0xdeadbeef
  v9: i8 = const -128
  v10: i16 = const 32767
  v11: i32 = const -2147483648
  v12: u8 = const 255
  v13: u16 = const 65535
  v14: u32 = const 4294967295
  v15: {i32, f64} = zero
  v16: [i64; 4] = zero
  v17: slice<u8> = zero
  v18: {} = zero
  v19: {i8, {i16, [u8; 3]}} = zero
  v20: any = zero
  v21: str = zero
  v22: fn(i64) -> i64 = zero
  v23: extern fn(ptr) -> i32 = zero
  v24: union<> = zero
  v25: fn() -> void = zero
  v26: i64 = add v0, v4
  v27: i64 = sub v0, v4
  v28: i64 = mul v0, v4
  v29: i64 = div v0, v4
  v30: i64 = rem v0, v4
  v31: i64 = and v0, v4
  v32: i64 = or v0, v4
  v33: i64 = xor v0, v4
  v34: i64 = shl v0, v4
  v35: i64 = shr v0, v4
  v36: i64 = rotl v0, v4
  v37: i64 = rotr v0, v4
  v38: i64 = min v0, v4
  v39: i64 = max v0, v4
  v40: i64 = neg v0
  v41: i64 = not v0
  v42: i64 = abs v0
  v43: f64 = sqrt v100
  v44: i64 = clz v0
  v45: i64 = ctz v0
  v46: i64 = popcnt v0
  v47: bool = eq v0, v4
  v48: bool = ne v0, v4
  v49: bool = lt v0, v4
  v50: bool = le v0, v4
  v51: bool = gt v0, v4
  v52: bool = ge v0, v4
  v53: i64 = select v47, v0, v4
  v54: f64 = cast v0
  v55: u64 = bitcast v54
  v56: i64 = load v1
  store v1, v56
  v57: ptr = alloc {i8, i64}, v5
  free v57
  memcpy v1, v57, v5
  memset v1, v12, v5
  v58: ptr = field {i8, i64}, v57, 1
  v59: ptr = elem i64, v57, v0
  v60: i32 = extract v2, 0
  v61: {i32, f64} = insert v2, 1, v54
  v62: union<i32, f64> = union.make 1, v54
  v63: u32 = union.tag v62
  v64: f64 = union.get 1, v3
  v65: any = any.make v0
  v66: u32 = any.tag v65
  v67: i64 = any.get v65
  v68: str = str.const "hi\n\t\\\"\x00\x7f\xff\xc3\xa9 ok"
  v69: fn(i64, ptr, {i32, f64}, union<i32, f64>) -> i64 = func.addr all
  v70: extern fn(ptr) -> i32 = func.addr puts
  v71: i32 = call puts(v1)
  call "extern"(v21, v65)
  call "weird name\n\x00\xc3\xbf"()
  v72: i64 = call_indirect v69(v0, v1, v2, v3)
  jump block1(v0, v54)
block1(v73: i64, v74: f64):
  switch v73, [-1: block2, 0: block3(v74), 9223372036854775807: block2], block4
block2:
  brif v47, block3(v74), block4
block3(v75: f64):
  v100: f64 = const 1.0
  ret v72
block4:
  switch v63, [4294967295: block2, 0: block2], block2
block5:
  ret
block6:
  trap
block7:
  unreachable
}
"#;

    #[test]
    fn every_instruction_and_type_roundtrips() {
        // v100 is used before it is defined (textually): it is renumbered.
        let src = ALL;
        let m = parse_module(src).unwrap_or_else(|e| panic!("{e}"));
        let printed = print_module(&m);
        let fixed = src.replace("sqrt v100", "sqrt v76").replace("v100: f64", "v76: f64");
        assert_eq!(printed, fixed);
        roundtrip(&fixed);
        let f = &m.functions[0];
        assert_eq!(m.externs[2].name, "weird name\n\0\u{ff}");
        assert_eq!(m.data[0], b"hi\n\t\\\"\x00\x7f\xff\xc3\xa9 ok".to_vec());
        // The switch on u32 stores canonical bits; the one on i64 sign-extends.
        let sw: Vec<_> = f
            .insts
            .iter()
            .filter_map(|d| match &d.kind {
                InstKind::Switch { cases, .. } => Some(cases.iter().map(|c| c.0).collect::<Vec<_>>()),
                _ => None,
            })
            .collect();
        assert_eq!(sw, vec![vec![u64::MAX, 0, i64::MAX as u64], vec![u32::MAX as u64, 0]]);
        // Entry params are the signature's; values have their declared types.
        assert_eq!(f.blocks[0].params.len(), 4);
        assert_eq!(f.values[9].ty, Type::I8);
        assert!(
            matches!(f.insts[5].kind, InstKind::Const { ty: Scalar::I8, bits } if bits == (-128i64) as u64)
        );
    }

    #[test]
    fn floats_roundtrip_bit_exactly() {
        let f64s: Vec<u64> = vec![
            0.0f64.to_bits(),
            (-0.0f64).to_bits(),
            1.0f64.to_bits(),
            0.1f64.to_bits(),
            1e300f64.to_bits(),
            f64::MIN_POSITIVE.to_bits(),
            1, // smallest subnormal
            f64::MAX.to_bits(),
            f64::INFINITY.to_bits(),
            f64::NEG_INFINITY.to_bits(),
            CANON_NAN_F64,
            0xfff8_0000_0000_0000, // negative quiet NaN
            0x7ff0_0000_0000_0001, // signalling NaN
            0x7fff_ffff_ffff_ffff,
        ];
        let f32s: Vec<u32> = vec![
            0.0f32.to_bits(),
            (-0.0f32).to_bits(),
            0.1f32.to_bits(),
            1e-7f32.to_bits(),
            f32::MAX.to_bits(),
            1,
            f32::INFINITY.to_bits(),
            f32::NEG_INFINITY.to_bits(),
            CANON_NAN_F32,
            0xffc0_0000,
            0x7f80_0001,
        ];
        let mut m = Module::new();
        let mut f = Function::new("floats", Signature::new(vec![], Type::Void));
        for &b in &f64s {
            f.push_inst(Block(0), InstKind::Const { ty: Scalar::F64, bits: b }, Some(Type::F64));
        }
        for &b in &f32s {
            f.push_inst(Block(0), InstKind::Const { ty: Scalar::F32, bits: b as u64 }, Some(Type::F32));
        }
        f.push_inst(Block(0), InstKind::Return { value: None }, None);
        m.functions.push(f);
        let text = stable(&m);
        assert!(text.contains("const 1e300\n"), "{text}");
        assert!(text.contains("const -0.0\n"));
        assert!(text.contains("const 0.1\n"));
        assert!(text.contains("v0: f64 = const 0.0\n"));
        assert!(text.contains("const 5e-324\n"));
        assert!(text.contains("const nan\n"));
        assert!(text.contains("const nan:0xfff8000000000000\n"));
        assert!(text.contains("const nan:0x7ff0000000000001\n"));
        assert!(text.contains("const -inf\n"));
        assert!(text.contains("f32 = const 1e-7\n"));
        assert!(text.contains("f32 = const nan:0x7f800001\n"));
        let back = parse_module(&text).unwrap();
        let bits: Vec<u64> = back.functions[0]
            .insts
            .iter()
            .filter_map(|d| match d.kind {
                InstKind::Const { bits, .. } => Some(bits),
                _ => None,
            })
            .collect();
        let want: Vec<u64> = f64s.iter().copied().chain(f32s.iter().map(|&b| b as u64)).collect();
        assert_eq!(bits, want);
        // Every printed finite float contains '.' or 'e'.
        for line in text.lines().filter(|l| l.contains("const")) {
            let lit = line.rsplit(' ').next().unwrap();
            assert!(lit.contains(['.', 'e', 'n']), "{line}");
        }
    }

    #[test]
    fn string_data_with_every_byte_roundtrips() {
        let mut m = Module::new();
        let all: Vec<u8> = (0..=255u8).collect();
        let d = m.add_data(&all);
        let d2 = m.add_data(b"");
        let mut f = Function::new("s", Signature::new(vec![], Type::Str));
        let (_, v) = f.push_inst(Block(0), InstKind::StrConst { data: d }, Some(Type::Str));
        f.push_inst(Block(0), InstKind::StrConst { data: d2 }, Some(Type::Str));
        f.push_inst(Block(0), InstKind::Return { value: v }, None);
        m.functions.push(f);
        let text = stable(&m);
        assert!(text.is_ascii());
        let back = parse_module(&text).unwrap();
        assert_eq!(back.data, vec![all, vec![]]);
    }

    #[test]
    fn quoted_names_roundtrip() {
        let names = ["i64", "fn", "with space", "", "ünïcode", "a\"b\\c", "ok.name$1", "1abc", "nan"];
        let mut m = Module::new();
        for n in names {
            m.externs.push(ExternFunc { name: format!("x{n}"), sig: Signature::new(vec![], Type::Void) });
            let mut f = Function::new(n, Signature::new(vec![Type::I32], Type::Void));
            f.push_inst(Block(0), InstKind::Call { callee: Callee::Extern(ExternId(0)), args: vec![] }, None);
            f.push_inst(Block(0), InstKind::Return { value: None }, None);
            m.functions.push(f);
        }
        let text = stable(&m);
        assert!(text.contains("fn \"i64\"(i32)"));
        assert!(text.contains("fn ok.name$1(i32)"));
        let back = parse_module(&text).unwrap();
        let got: Vec<&str> = back.functions.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(got, names);
    }

    #[test]
    fn forward_references_and_block_order() {
        let src = "\
fn f(i64) -> i64 {
block2(v7: i64):
  ret v7
block0(v1: i64):
  jump block1(v9)
block1:
  v9: i64 = add v1, v1
  jump block2(v9)
}
";
        let m = parse_module(src).unwrap();
        let f = &m.functions[0];
        assert_eq!(f.blocks.len(), 3);
        // Values are created in textual order: v7 is value 0 (param of block2).
        assert_eq!(f.values[0].def, ValueDef::Param(Block(2), 0));
        assert_eq!(f.blocks[0].params, vec![Value(1)]);
        let text = print_module(&m);
        assert_eq!(
            text,
            "\
fn f(i64) -> i64 {
block0(v0: i64):
  jump block1(v1)
block1:
  v1: i64 = add v0, v0
  jump block2(v1)
block2(v2: i64):
  ret v2
}
"
        );
        roundtrip(&text);
    }

    #[test]
    fn ill_typed_modules_roundtrip() {
        let mut m = Module::new();
        let mut f = Function::new("bad", Signature::new(vec![Type::I32], Type::I64));
        // Const whose kind type disagrees with the result type.
        f.push_inst(Block(0), InstKind::Const { ty: Scalar::I32, bits: u64::MAX }, Some(Type::I64));
        // Const whose result is an aggregate.
        f.push_inst(Block(0), InstKind::Const { ty: Scalar::U8, bits: 300 }, Some(Type::Struct(vec![])));
        // Non-canonical bits.
        f.push_inst(Block(0), InstKind::Const { ty: Scalar::I8, bits: 0xff }, Some(Type::I8));
        // Instructions without results that normally have one, and vice versa.
        f.push_inst(Block(0), InstKind::Const { ty: Scalar::F32, bits: 0x3f80_0000 }, None);
        f.push_inst(Block(0), InstKind::Zero { ty: Type::Any }, None);
        f.push_inst(Block(0), InstKind::Load { ty: Type::I64, ptr: Value(0) }, Some(Type::F64));
        f.push_inst(Block(0), InstKind::Cast { to: Scalar::U16, arg: Value(0) }, Some(Type::Any));
        f.push_inst(Block(0), InstKind::AnyGet { ty: Scalar::Bool, arg: Value(0) }, None);
        f.push_inst(
            Block(0),
            InstKind::UnionMake { ty: Type::Str, variant: 3, value: Value(0) },
            Some(Type::I8),
        );
        f.push_inst(Block(0), InstKind::Store { ptr: Value(0), value: Value(0) }, Some(Type::I64));
        // Switch on a non-integer, a select used before defined, a value defined twice.
        let (_, b) = f.push_inst(Block(0), InstKind::Const { ty: Scalar::Bool, bits: 1 }, Some(Type::BOOL));
        let b = b.unwrap();
        let bb = f.add_block();
        let bc = |blk| BlockCall { block: blk, args: vec![] };
        f.push_inst(
            Block(0),
            InstKind::Switch {
                value: b,
                cases: vec![(1, bc(bb)), (u64::MAX, bc(Block(0)))],
                default: bc(bb),
            },
            None,
        );
        let (i, r) = f.push_inst(
            bb,
            InstKind::Binary { op: BinOp::Add, lhs: Value(0), rhs: Value(0) },
            Some(Type::I32),
        );
        f.blocks[bb.index()].insts.push(i); // the same instruction twice: two definitions
        f.push_inst(bb, InstKind::Return { value: r }, None);
        f.push_inst(bb, InstKind::Trap, None); // after the terminator
        m.functions.push(f);
        let text = stable(&m);
        assert!(text.contains("v1: i64 = const<i32> -1\n"), "{text}");
        assert!(text.contains("v2: {} = const<u8> 44\n"), "{text}");
        assert!(text.contains("v3: i8 = const -1\n"), "{text}");
        assert!(text.contains("  const<f32> 1.0\n"), "{text}");
        assert!(text.contains("  zero<any>\n"), "{text}");
        assert!(text.contains("v4: f64 = load<i64> v0\n"), "{text}");
        assert!(text.contains("v5: any = cast<u16> v0\n"), "{text}");
        assert!(text.contains("  any.get<bool> v0\n"), "{text}");
        assert!(text.contains("v6: i8 = union.make<str> 3, v0\n"), "{text}");
        assert!(text.contains("v7: i64 = store v0, v0\n"), "{text}");
        assert!(text.contains("switch v8, [1: block1, 18446744073709551615: block0], block1\n"), "{text}");
        assert!(
            text.contains("  v9: i32 = add v0, v0\n  v10: i32 = add v0, v0\n  ret v9\n  trap\n"),
            "{text}"
        );
    }

    #[test]
    fn printer_never_panics_on_broken_references() {
        let mut m = Module::new();
        let mut f = Function::new("broken", Signature::new(vec![], Type::Void));
        f.push_inst(Block(0), InstKind::Return { value: Some(Value(123)) }, None);
        f.push_inst(
            Block(0),
            InstKind::Jump { dest: BlockCall { block: Block(9), args: vec![Value(77)] } },
            None,
        );
        f.push_inst(Block(0), InstKind::Call { callee: Callee::Func(FuncId(5)), args: vec![] }, None);
        f.push_inst(Block(0), InstKind::FuncAddr { callee: Callee::Extern(ExternId(5)) }, Some(Type::PTR));
        f.push_inst(Block(0), InstKind::StrConst { data: DataId(3) }, Some(Type::Str));
        f.blocks[0].insts.push(Inst(999));
        f.blocks[0].params.push(Value(555));
        f.insts.push(InstData { kind: InstKind::Trap, result: Some(Value(444)), origin: None });
        f.blocks[0].insts.push(Inst(f.insts.len() as u32 - 1));
        m.functions.push(f);
        let text = print_module(&m);
        assert!(text.contains("ret v?123"), "{text}");
        assert!(text.contains("jump block9(v?77)"), "{text}");
        assert!(parse_module(&text).is_err());
    }

    #[test]
    fn types_parse_and_print() {
        for t in [
            "void",
            "i8",
            "ptr",
            "[[i64; 2]; 0]",
            "slice<slice<u8>>",
            "{}",
            "{i8, {}, [f32; 4294967295]}",
            "union<>",
            "union<i32, {f64, ptr}>",
            "fn() -> void",
            "fn(i64, fn(i8) -> i8) -> {i64}",
            "extern fn(ptr, u64) -> i32",
            "any",
            "str",
        ] {
            let ty = parse_type(t).unwrap_or_else(|e| panic!("{t}: {e}"));
            assert_eq!(ty.to_string(), t);
        }
        assert_eq!(parse_type("  { i8 ,i16 } ; comment").unwrap().to_string(), "{i8, i16}");
        assert!(parse_type("i65").is_err());
        assert!(parse_type("[i8; 4294967296]").is_err());
        assert!(parse_type("i8 i8").is_err());
        // Depth exactly MAX_TYPE_DEPTH is fine, one more is not.
        let ok = "[".repeat(MAX_TYPE_DEPTH) + "i8" + &"; 1]".repeat(MAX_TYPE_DEPTH);
        assert_eq!(parse_type(&ok).unwrap().depth(), MAX_TYPE_DEPTH);
        let bad = "slice<".repeat(MAX_TYPE_DEPTH + 1) + "i8" + &">".repeat(MAX_TYPE_DEPTH + 1);
        let e = parse_type(&bad).unwrap_err();
        assert_eq!((e.line, e.column), (1, 1 + 6 * MAX_TYPE_DEPTH));
        // No stack overflow on absurd nesting.
        assert!(parse_type(&"[".repeat(100_000)).is_err());
        assert!(parse_type(&"{".repeat(100_000)).is_err());
        assert!(parse_module(&format!("fn f({}) {{}}", "fn(".repeat(100_000))).is_err());
    }

    fn at(e: &ParseError, line: usize, column: usize, needle: &str) {
        assert_eq!((e.line, e.column), (line, column), "{e}");
        assert!(e.message.contains(needle), "{e}");
    }

    #[test]
    fn parse_errors_have_positions() {
        let head = "fn f(i64) -> i64 {\nblock0(v0: i64):\n";
        // Unknown value.
        at(&err(&format!("{head}  v1: i64 = add v0, v9\n  ret v1\n}}")), 3, 21, "unknown value 'v9'");
        // Unknown block.
        at(&err(&format!("{head}  jump block3\n}}")), 3, 8, "unknown block 'block3'");
        // Bad type.
        at(&err(&format!("{head}  v1: i65 = const 1\n  ret v1\n}}")), 3, 7, "expected a type, found 'i65'");
        // Out-of-range literals.
        at(&err(&format!("{head}  v1: u8 = const 256\n  ret v0\n}}")), 3, 18, "out of range for u8");
        at(&err(&format!("{head}  v1: i8 = const -129\n  ret v0\n}}")), 3, 18, "out of range for i8");
        at(&err(&format!("{head}  v1: u64 = const -1\n  ret v0\n}}")), 3, 19, "out of range for u64");
        at(&err(&format!("{head}  v1: f32 = const 1e39\n  ret v0\n}}")), 3, 19, "out of range");
        at(&err(&format!("{head}  v1: f64 = const nan:0x1\n  ret v0\n}}")), 3, 23, "not a NaN");
        at(&err(&format!("{head}  v1: bool = const 1\n  ret v0\n}}")), 3, 20, "expected 'true' or 'false'");
        at(
            &err("fn f(i8) -> void {\nblock0(v0: i8):\n  switch v0, [-128: block0, 128: block0], block0\n}"),
            3,
            29,
            "case value 128 is out of range for i8",
        );
        // Missing tokens.
        at(&err(&format!("{head}  v1: bool = lt v0, v0\n  brif v1, block0\n}}")), 5, 1, "expected ','");
        at(&err(&format!("{head}  v1: i64 = add v0 v0\n}}")), 3, 20, "expected ',', found 'v0'");
        at(&err(&format!("{head}  ret v0\n")), 4, 1, "found end of input");
        at(&err("fn f(i64) i64 {}"), 1, 11, "expected '{'");
        at(&err(&format!("{head}  v1: i64 = frobnicate v0\n}}")), 3, 13, "unknown instruction 'frobnicate'");
        // Deep nesting.
        let deep = "[".repeat(1000);
        at(&err(&format!("{head}  v1: {deep} = zero\n}}")), 3, 7 + MAX_TYPE_DEPTH, "nesting");
        // Unterminated string.
        at(&err(&format!("{head}  v1: str = str.const \"abc\n  ret v0\n}}")), 3, 23, "unterminated string");
        at(&err(&format!("{head}  v1: str = str.const \"a\\q\"\n}}")), 3, 23, "unknown escape");
        // Duplicate value definition.
        at(
            &err(&format!("{head}  v1: i64 = const 1\n  v1: i64 = const 2\n  ret v1\n}}")),
            4,
            3,
            "duplicate definition",
        );
        at(&err("fn f(i64) -> void {\nblock0(v0: i64, v0: i64):\n  ret\n}"), 2, 17, "duplicate definition");
        // Unknown callee.
        at(&err(&format!("{head}  v1: i64 = call nope(v0)\n  ret v1\n}}")), 3, 18, "unknown function 'nope'");
        // Block labels.
        at(&err(&format!("{head}  ret v0\nblock0:\n  trap\n}}")), 4, 1, "duplicate block label");
        at(&err(&format!("{head}  ret v0\nblock2:\n  trap\n}}")), 4, 1, "'block1' is missing");
        at(&err("fn f(i64) -> void {\nblock0(v0: i32):\n  ret\n}"), 2, 1, "entry block parameters (i32)");
        at(&err("fn f() -> void {\n  ret\n}"), 2, 3, "expected a block label");
        at(&err("fn f() -> void {\nblock0:\n  ret @\n}"), 3, 7, "unexpected character '@'");
        at(&err("\n\n   garbage"), 3, 4, "expected 'fn' or 'extern fn'");
    }

    #[test]
    fn comments_and_whitespace() {
        let src = "; header\nextern fn puts(ptr)->i32 ; c\nfn   main ( ) -> void{block0: ; x\n call puts ( v0 ) ;c\n  v0 : ptr = const 0\nret}";
        let m = parse_module(src).unwrap();
        assert_eq!(
            print_module(&m),
            "extern fn puts(ptr) -> i32\n\nfn main() -> void {\nblock0:\n  call puts(v0)\n  v0: ptr = const 0x0\n  ret\n}\n"
        );
        // `ret` followed by a definition does not take it as its operand.
        let m = parse_module("fn f() -> void {\nblock0:\n  ret\n  v0: i64 = const 1\n}").unwrap();
        assert!(matches!(m.functions[0].insts[0].kind, InstKind::Return { value: None }));
        // Missing `-> T` in a header means void; decimal pointers are accepted.
        let m = parse_module("fn f() {\nblock0:\n  v0: ptr = const 16\n  ret\n}").unwrap();
        assert!(print_module(&m).contains("fn f() -> void {\nblock0:\n  v0: ptr = const 0x10\n"));
        // An empty function (no blocks) round-trips.
        roundtrip("fn f() -> void {\n}\n");
        roundtrip("");
    }

    /// A small deterministic generator.
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            self.0 >> 33
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn garbage_never_panics() {
        let mut rng = Lcg(0x5eed);
        let pieces = [
            "fn",
            "extern",
            "block0",
            "block1",
            "v0",
            "v1",
            "v2",
            ":",
            "=",
            "(",
            ")",
            "[",
            "]",
            "{",
            "}",
            "<",
            ">",
            ",",
            ";",
            "->",
            "-",
            "i64",
            "f32",
            "u8",
            "bool",
            "ptr",
            "const",
            "nan",
            "inf",
            ":0x",
            "1e",
            "0x",
            "99999999999999999999999999999999999999999",
            "-1",
            "1.5",
            "\"",
            "\\x",
            "\\",
            "\n",
            " ",
            "call",
            "switch",
            "brif",
            "jump",
            "ret",
            "union<",
            "slice<",
            "str.const",
            "func.addr",
            "zero",
            "load<",
            "block4294967296",
            "v99999999999",
            "é",
            "\u{0}",
            "true",
        ];
        let bases = [FIB, ALL];
        for iter in 0..6000 {
            let s: String = match iter % 3 {
                // Token soup.
                0 => (0..rng.below(60)).map(|_| pieces[rng.below(pieces.len())]).collect(),
                // Random bytes.
                1 => {
                    let bytes: Vec<u8> = (0..rng.below(80)).map(|_| rng.next() as u8).collect();
                    String::from_utf8_lossy(&bytes).into_owned()
                }
                // Mutations of valid text.
                _ => {
                    let mut b: Vec<char> = bases[rng.below(2)].chars().collect();
                    for _ in 0..1 + rng.below(4) {
                        let at = rng.below(b.len() + 1);
                        match rng.below(3) {
                            0 if at < b.len() => {
                                b.remove(at);
                            }
                            1 => {
                                let p = pieces[rng.below(pieces.len())];
                                for (k, c) in p.chars().enumerate() {
                                    b.insert(at + k, c);
                                }
                            }
                            _ if at < b.len() => b[at] = (rng.below(95) as u8 + 32) as char,
                            _ => {}
                        }
                    }
                    b.into_iter().collect()
                }
            };
            if let Ok(m) = parse_module(&s) {
                // Whatever parses must print stably.
                stable(&m);
            } else if let Err(e) = parse_module(&s) {
                assert!(e.line >= 1 && e.column >= 1);
            }
            let _ = parse_type(&s);
        }
    }
}
