"""The verifier, builder misuse, argument conversion and parse errors."""

from __future__ import annotations

import numpy as np
import programs
import pytest

import rayzor

i32, i64, u8, u64, f64, ptr = rayzor.i32, rayzor.i64, rayzor.u8, rayzor.u64, rayzor.f64, rayzor.ptr


def verify_error(m: rayzor.Module) -> rayzor.VerifyError:
    with pytest.raises(rayzor.VerifyError) as ei:
        m.verify()
    e = ei.value
    assert isinstance(e, rayzor.RayzorError)
    assert f"[{e.rule}]" in str(e) or e.rule in str(e)
    # Verification is deterministic: asking again gives the same answer.
    with pytest.raises(rayzor.VerifyError) as again:
        m.verify()
    assert (again.value.rule, again.value.function, again.value.block, again.value.inst) == (
        e.rule,
        e.function,
        e.block,
        e.inst,
    )
    return e


def located(e: rayzor.VerifyError, function: str, block: str | None, inst: str | None = None) -> None:
    assert e.function == function, str(e)
    assert e.block == block, str(e)
    if block is not None:
        assert block in str(e), str(e)
    if inst is not None:
        assert e.inst == inst, str(e)
        assert inst in str(e), str(e)


# ---------------------------------------------------------------------------
# Malformed programs built with the builder
# ---------------------------------------------------------------------------


def test_empty_block():
    m = rayzor.Module()
    f = m.function("f", [], i64)
    f.block()
    f.ret(0)
    e = verify_error(m)
    assert e.rule == "empty-block"
    located(e, "f", "block1")


def test_missing_terminator():
    m = rayzor.Module()
    f = m.function("noterm", [i64], i64)
    f.add(f.params[0], 1)
    e = verify_error(m)
    assert e.rule == "missing-terminator"
    located(e, "noterm", "block0", "inst1")  # inst0 is the constant 1


def test_operand_type_mismatch_in_binary():
    m = rayzor.Module()
    f = m.function("mix", [i32, i64], i32)
    a, b = f.params
    f.ret(f.add(a, b))
    e = verify_error(m)
    assert e.rule == "operand-type"
    located(e, "mix", "block0", "inst0")
    assert "i64" in str(e)


def test_operation_not_accepted_for_type():
    m = rayzor.Module()
    f = m.function("f", [i64], i64)
    f.ret(f.sqrt(f.params[0]))
    e = verify_error(m)
    assert e.rule == "operand-type"
    located(e, "f", "block0", "inst0")
    assert "sqrt" in str(e)


def test_select_condition_must_be_bool():
    m = rayzor.Module()
    f = m.function("sel", [i64, i64], i64)
    a, b = f.params
    f.ret(f.select(a, a, b))
    e = verify_error(m)
    assert e.rule == "operand-type"
    located(e, "sel", "block0", "inst0")


def test_return_type():
    m = rayzor.Module()
    f = m.function("f", [i32], i64)
    f.ret(f.params[0])
    e = verify_error(m)
    assert e.rule == "return-type"
    located(e, "f", "block0", "inst0")


def test_return_value_from_void_function():
    m = rayzor.Module()
    f = m.function("v", [i64], rayzor.void)
    f.ret(f.params[0])
    e = verify_error(m)
    assert e.rule == "return-type"
    located(e, "v", "block0", "inst0")


def test_missing_return_value():
    m = rayzor.Module()
    f = m.function("f", [], f64)
    f.ret()
    e = verify_error(m)
    assert e.rule == "return-type"


def test_branch_args_count():
    m = rayzor.Module()
    f = m.function("f", [i64], i64)
    b = f.block(i64)
    f.jump(b)
    f.switch_to(b)
    f.ret(b.params[0])
    e = verify_error(m)
    assert e.rule == "branch-args"
    located(e, "f", "block0", "inst0")
    assert "block1" in str(e)


def test_branch_args_type():
    m = rayzor.Module()
    f = m.function("f", [f64], f64)
    b = f.block(i64)
    f.jump(b, f.const(1, i32))
    f.switch_to(b)
    f.ret(f.params[0])
    e = verify_error(m)
    assert e.rule == "branch-args"
    located(e, "f", "block0", "inst1")


def test_call_signature():
    m = rayzor.Module()
    g = m.function("g", [i64], i64)
    g.ret(g.params[0])
    f = m.function("caller", [f64], i64)
    f.ret(f.call("g", f.params[0]))
    e = verify_error(m)
    assert e.rule == "call-signature"
    located(e, "caller", "block0", "inst0")
    assert "'g'" in str(e)


def test_call_arg_count():
    m = rayzor.Module()
    g = m.function("g", [i64, i64], i64)
    g.ret(g.params[0])
    f = m.function("caller", [i64], i64)
    f.ret(f.call("g", f.params[0]))
    assert verify_error(m).rule == "call-signature"


def test_bad_cast():
    m = rayzor.Module()
    f = m.function("f", [f64], ptr)
    f.ret(f.cast(f.params[0], ptr))
    e = verify_error(m)
    assert e.rule == "bad-cast"
    located(e, "f", "block0", "inst0")


def test_bitcast_width():
    m = rayzor.Module()
    f = m.function("f", [i32], f64)
    f.ret(f.bitcast(f.params[0], f64))
    e = verify_error(m)
    assert e.rule == "bitcast-width"
    located(e, "f", "block0", "inst0")


def test_bitcast_bool():
    m = rayzor.Module()
    f = m.function("f", [u8], rayzor.bool_)
    f.ret(f.bitcast(f.params[0], rayzor.bool_))
    assert verify_error(m).rule == "bitcast-width"


def test_field_index():
    s = rayzor.struct(i32, f64)
    m = rayzor.Module()
    f = m.function("f", [ptr], ptr)
    f.ret(f.field_addr(s, f.params[0], 2))
    e = verify_error(m)
    assert e.rule == "field-index"
    located(e, "f", "block0", "inst0")


def test_variant_index():
    u = rayzor.union(i32, f64)
    m = rayzor.Module()
    f = m.function("f", [i32], u)
    f.ret(f.union_make(u, 2, f.params[0]))
    e = verify_error(m)
    assert e.rule == "variant-index"
    located(e, "f", "block0", "inst0")


def test_dominance():
    m = rayzor.Module()
    f = m.function("dom", [rayzor.bool_], i64)
    left, join = f.block(), f.block()
    f.brif(f.params[0], left, join)
    f.switch_to(left)
    x = f.const(5, i64)
    f.jump(join)
    f.switch_to(join)
    f.ret(x)
    e = verify_error(m)
    assert e.rule == "dominance"
    located(e, "dom", "block2", "inst3")


def test_branch_to_entry():
    m = rayzor.Module()
    f = m.function("loop", [], rayzor.void)
    f.jump(f.entry)
    e = verify_error(m)
    assert e.rule == "branch-to-entry"
    located(e, "loop", "block0")


def test_unreachable_block():
    m = rayzor.Module()
    f = m.function("f", [], i64)
    f.ret(1)
    dead = f.block()
    f.switch_to(dead)
    f.ret(2)
    e = verify_error(m)
    assert e.rule == "unreachable-block"
    located(e, "f", "block1")


def test_extern_signature_aggregate_param():
    m = rayzor.Module()
    m.extern("host", [rayzor.struct(i32, i32)], i64)
    e = verify_error(m)
    assert e.rule == "extern-signature"
    assert e.function == "host"


def test_extern_signature_too_many_int_params():
    m = rayzor.Module()
    m.extern("many", [i64] * 7, i64)
    e = verify_error(m)
    assert e.rule == "extern-signature"
    assert e.function == "many"
    m2 = rayzor.Module()
    m2.extern("six", [i64] * 6 + [f64] * 8, i64)
    m2.verify()  # exactly at the limits is fine


def test_too_many_leaves():
    m = rayzor.Module()
    f = m.function("big", [], i64)
    f.zero(rayzor.array(i64, 5000))
    f.ret(0)
    e = verify_error(m)
    assert e.rule == "too-many-leaves"
    located(e, "big", "block0")


def test_type_too_large():
    m = rayzor.Module()
    f = m.function("huge", [], ptr)
    f.ret(f.alloc(rayzor.array(rayzor.array(i64, 1 << 20), 1 << 20), f.const(1, u64)))
    e = verify_error(m)
    assert e.rule == "type-too-large"
    located(e, "huge", "block0")


def test_store_needs_pointer():
    m = rayzor.Module()
    f = m.function("f", [i64], rayzor.void)
    f.store(f.params[0], f.params[0])
    f.ret()
    e = verify_error(m)
    assert e.rule == "operand-type"
    located(e, "f", "block0", "inst0")


def test_interpret_refuses_unverifiable_module():
    m = rayzor.Module()
    f = m.function("f", [i32, i64], i32)
    a, b = f.params
    f.ret(f.add(a, b))
    with pytest.raises(rayzor.VerifyError) as ei:
        rayzor.interpret(m, "f", 1, 2)
    assert ei.value.rule == "operand-type"


def test_error_in_second_function_names_it():
    m = programs.fib()
    g = m.function("second", [], i64)
    g.ret(g.const(1, i32))
    e = verify_error(m)
    assert e.rule == "return-type"
    assert e.function == "second"


# ---------------------------------------------------------------------------
# Malformed programs from text
# ---------------------------------------------------------------------------


def test_text_switch_duplicate_cases():
    m = rayzor.parse(
        """fn sw(i32) -> i32 {
block0(v0: i32):
  switch v0, [1: block1, 1: block2], block1
block1:
  ret v0
block2:
  ret v0
}
"""
    )
    e = verify_error(m)
    assert e.rule == "switch-case"
    located(e, "sw", "block0", "inst0")


def test_text_use_before_def():
    m = rayzor.parse(
        """fn f(i64) -> i64 {
block0(v0: i64):
  v1: i64 = add v2, v0
  v2: i64 = const 1
  ret v1
}
"""
    )
    e = verify_error(m)
    assert e.rule == "use-before-def"
    located(e, "f", "block0", "inst0")


def test_text_duplicate_function_name():
    m = rayzor.parse(
        """fn f() -> void {
block0:
  ret
}

fn f() -> void {
block0:
  ret
}
"""
    )
    e = verify_error(m)
    assert e.rule == "duplicate-name"
    assert e.function == "f"


def test_text_void_parameter():
    m = rayzor.parse("fn f(void) -> void {\nblock0(v0: void):\n  ret\n}\n")
    e = verify_error(m)
    assert e.rule == "void-type"
    assert e.function == "f"


def test_text_empty_union():
    m = rayzor.parse("fn f(union<>) -> void {\nblock0(v0: union<>):\n  ret\n}\n")
    e = verify_error(m)
    assert e.rule == "empty-union"
    assert e.function == "f"


def test_text_result_type():
    m = rayzor.parse(
        """fn f(i64) -> i32 {
block0(v0: i64):
  v1: i32 = add v0, v0
  ret v1
}
"""
    )
    e = verify_error(m)
    assert e.rule == "result-type"
    located(e, "f", "block0", "inst0")


def test_text_terminator_mid_block():
    m = rayzor.parse(
        """fn f(i64) -> i64 {
block0(v0: i64):
  ret v0
  ret v0
}
"""
    )
    e = verify_error(m)
    assert e.rule == "terminator-mid-block"
    located(e, "f", "block0", "inst0")


def test_text_extract_bad_index():
    m = rayzor.parse(
        """fn f() -> i32 {
block0:
  v0: {i32, f64} = zero
  v1: i32 = extract v0, 7
  ret v1
}
"""
    )
    e = verify_error(m)
    assert e.rule in ("field-index", "result-type")
    located(e, "f", "block0", "inst1")


# ---------------------------------------------------------------------------
# Builder misuse -> BuildError
# ---------------------------------------------------------------------------


def test_adding_after_terminator():
    m = rayzor.Module()
    f = m.function("f", [i64], i64)
    f.ret(f.params[0])
    with pytest.raises(rayzor.BuildError):
        f.add(f.params[0], f.params[0])
    with pytest.raises(rayzor.BuildError):
        f.ret(f.params[0])
    # the failed calls left nothing behind
    assert str(m).count("ret v0") == 1
    m.verify()


def test_value_from_another_function():
    m = rayzor.Module()
    g = m.function("g", [i64], i64)
    f = m.function("f", [i64], i64)
    with pytest.raises(rayzor.BuildError):
        f.add(g.params[0], 1)
    with pytest.raises(rayzor.BuildError):
        f.ret(g.params[0])
    other = rayzor.Module().function("f", [i64], i64)
    with pytest.raises(rayzor.BuildError):
        f.neg(other.params[0])


def test_block_from_another_function():
    m = rayzor.Module()
    g = m.function("g", [], rayzor.void)
    gb = g.block()
    f = m.function("f", [], rayzor.void)
    with pytest.raises(rayzor.BuildError):
        f.jump(gb)
    with pytest.raises(rayzor.BuildError):
        f.switch_to(gb)


@pytest.mark.parametrize(
    "call",
    [
        lambda f, v: f.add("x", v),
        lambda f, v: f.add(v, None),
        lambda f, v: f.add(1, 2),
        lambda f, v: f.neg(3),
        lambda f, v: f.jump(v),
        lambda f, v: f.brif(v, "block", "block"),
        lambda f, v: f.const(1, rayzor.struct(i64)),
        lambda f, v: f.const(1, "i64"),
        lambda f, v: f.cast(v, rayzor.struct(i64)),
        lambda f, v: f.any_get(v, rayzor.str_),
        lambda f, v: f.load(42, v),
        lambda f, v: f.call("nonexistent", v),
        lambda f, v: f.func_addr("nonexistent"),
        lambda f, v: f.extract(v, 0),
        lambda f, v: f.call_indirect(v, v),
        lambda f, v: f.union_get(v, 0),
        lambda f, v: f.switch(f.cast(v, f64), {}, f.block()),
        lambda f, v: f.str_const(123),
        lambda f, v: f.switch(v, {1: "nope"}, f.block()),
    ],
)
def test_wrong_operand_kind(call):
    m = rayzor.Module()
    f = m.function("f", [i64], i64)
    (v,) = f.params
    with pytest.raises(rayzor.BuildError):
        call(f, v)


def test_bad_types_and_declarations():
    m = rayzor.Module()
    with pytest.raises(rayzor.BuildError):
        m.function("f", [1], i64)
    with pytest.raises(rayzor.BuildError):
        m.function("f", [i64], "i64")
    with pytest.raises(rayzor.BuildError):
        m.function("f", [rayzor.void], i64)
    with pytest.raises(rayzor.BuildError):
        m.function("", [], i64)
    m.function("f", [], i64)
    with pytest.raises(rayzor.BuildError):
        m.function("f", [], i64)
    with pytest.raises(rayzor.BuildError):
        m.extern("f", [], i64)
    with pytest.raises(rayzor.BuildError):
        rayzor.union()
    with pytest.raises(rayzor.BuildError):
        rayzor.struct(i64, rayzor.void)
    with pytest.raises(rayzor.BuildError):
        rayzor.array(rayzor.void, 3)
    t = i64
    for _ in range(32):
        t = rayzor.array(t, 1)
    with pytest.raises(rayzor.BuildError):
        rayzor.array(t, 1)
    with pytest.raises(rayzor.BuildError):
        i64.offset_of(0)
    assert m.functions == ["f"]


def test_finished_function_cannot_change():
    m = rayzor.Module()
    f = m.function("f", [], i64)
    f.ret(1)
    f.finish()
    with pytest.raises(rayzor.BuildError):
        f.block()
    with pytest.raises(rayzor.BuildError):
        f.const(1, i64)
    m2 = programs.fib()
    m2.verify()  # verify finishes every builder


def test_variable_misuse():
    m = rayzor.Module()
    f = m.function("f", [i64], i64)
    x = f.var("x", i64)
    with pytest.raises(rayzor.BuildError):
        f.get(x)  # never assigned on this path
    with pytest.raises(rayzor.BuildError):
        f.set(x, f.const(1.0, f64))
    g = m.function("g", [], i64)
    with pytest.raises(rayzor.BuildError):
        g.set(x, 1)
    with pytest.raises(rayzor.BuildError):
        f.var("v", rayzor.void)


def test_value_has_no_truth_value():
    m = rayzor.Module()
    f = m.function("f", [i64], i64)
    with pytest.raises(rayzor.BuildError):
        bool(f.params[0])
    with pytest.raises(rayzor.BuildError):
        if f.params[0]:  # a Value is not known until run time
            pass


def test_everything_raised_on_bad_builder_input_is_a_rayzor_error():
    """errors.py: everything Rayzor raises on bad input derives from RayzorError."""
    m = rayzor.Module()
    f = m.function("f", [rayzor.struct(i64, i64)], f64)
    (v,) = f.params
    bad_calls = [
        lambda: f.const(10**400, f64),
        lambda: f.const(np.array([1.0, 2.0]), f64),
        lambda: f.extract(v, -1),
        lambda: f.extract(v, 2**32),
        lambda: f.insert(v, -1, 1),
        lambda: f.field_addr(rayzor.struct(i64), f.zero(ptr), -1),
        lambda: f.union_make(rayzor.union(i64), -1, 1),
        lambda: rayzor.array(i64, -1),
        lambda: rayzor.array(i64, 2**32),
    ]
    outcomes = []
    for i, call in enumerate(bad_calls):
        try:
            call()
            outcomes.append((i, "no error"))
        except rayzor.RayzorError:
            pass
        except Exception as e:  # noqa: BLE001 - the point is to catch what leaks
            outcomes.append((i, f"{type(e).__name__}: {e}"))
    assert outcomes == []


def test_constant_out_of_range_in_builder():
    m = rayzor.Module()
    f = m.function("f", [u8], u8)
    with pytest.raises(rayzor.RayzorError):
        f.const(256, u8)
    with pytest.raises(rayzor.RayzorError):
        f.add(f.params[0], -1)
    with pytest.raises(rayzor.RayzorError):
        f.const(1.5, i64)


# ---------------------------------------------------------------------------
# Argument conversion -> ArgumentError
# ---------------------------------------------------------------------------


def _ident(t) -> rayzor.Module:
    m = rayzor.Module()
    f = m.function("f", [t], t)
    f.ret(f.params[0])
    return m


@pytest.mark.parametrize(
    "t, bad",
    [
        (u8, 256),
        (u8, -1),
        (rayzor.i8, 128),
        (rayzor.i8, -129),
        (u64, 2**64),
        (u64, -1),
        (i64, 2**63),
        (i64, 1.5),
        (i64, 2.0),
        (i64, True),
        (i64, "3"),
        (i64, None),
        (f64, "1.0"),
        (f64, True),
        (rayzor.bool_, 1),
        (rayzor.bool_, None),
        (ptr, -1),
        (ptr, 2**64),
        (ptr, 1.5),
        pytest.param(f64, 10**400, id="f64-10**400"),
        pytest.param(rayzor.f32, 10**400, id="f32-10**400"),
        (i64, np.array([1, 2])),
        (f64, np.array([1.0, 2.0])),
    ],
)
def test_bad_scalar_argument(t, bad):
    with pytest.raises(rayzor.ArgumentError):
        rayzor.interpret(_ident(t), "f", bad)


@pytest.mark.parametrize(
    "t, good, want",
    [
        (u8, 255, 255),
        (rayzor.i8, -128, -128),
        (u64, 2**64 - 1, 2**64 - 1),
        (i64, np.int64(-5), -5),
        (u8, np.uint8(200), 200),
        (f64, 3, 3.0),
        (f64, np.float32(0.5), 0.5),
        (rayzor.bool_, np.bool_(True), True),
        (ptr, 0, 0),
        (ptr, None, 0),
    ],
)
def test_good_scalar_argument(t, good, want):
    got = rayzor.interpret(_ident(t), "f", good)
    assert got == want and type(got) is type(want)


@pytest.mark.parametrize(
    "t, value, want", [(f64, np.array(2.5), 2.5), (i64, np.array(7), 7), (f64, np.float64(-1.25), -1.25)]
)
def test_zero_dimensional_numpy_scalars(t, value, want):
    """A 0-d array converts like the scalar it holds, or is refused with ArgumentError."""
    try:
        got = rayzor.interpret(_ident(t), "f", value)
    except rayzor.ArgumentError:
        return
    assert got == want


def test_wrong_argument_count():
    m = _ident(i64)
    with pytest.raises(rayzor.ArgumentError):
        rayzor.interpret(m, "f")
    with pytest.raises(rayzor.ArgumentError):
        rayzor.interpret(m, "f", 1, 2)


def test_unknown_function_name():
    with pytest.raises(rayzor.ArgumentError):
        rayzor.interpret(_ident(i64), "g", 1)


def test_aggregate_parameter_and_result():
    s = rayzor.struct(i64, i64)
    m = rayzor.Module()
    f = m.function("f", [s], i64)
    f.ret(f.extract(f.params[0], 0))
    g = m.function("g", [], s)
    g.ret(g.zero(s))
    m.verify()
    with pytest.raises(rayzor.ArgumentError):
        rayzor.interpret(m, "f", (1, 2))
    with pytest.raises(rayzor.ArgumentError):
        rayzor.interpret(m, "g")


# ---------------------------------------------------------------------------
# Parse errors -> ParseError with line and column
# ---------------------------------------------------------------------------

PARSE_ERRORS = [
    # (text, line, column, words expected in the message)
    ("garbage", 1, 1, ["fn"]),
    ("fn f() -> i64 {\nblock0:\n  v0: i64 = frob 1\n  ret v0\n}\n", 3, 13, ["frob"]),
    ("fn f() -> i64 {\nblock0:\n  ret v7\n}\n", 3, 7, ["v7"]),
    ("fn f() -> u8 {\nblock0:\n  v0: u8 = const 256\n  ret v0\n}\n", 3, 18, ["256"]),
    ('fn f() -> str {\nblock0:\n  v0: str = str.const "abc\n  ret v0\n}\n', 3, 23, ["unterminated"]),
    ("fn f() -> void {\n@\n}\n", 2, 1, ["@"]),
    ("fn f() -> i64 {\nblock0:\n  v0: i64 = call nothere()\n  ret v0\n}\n", 3, 18, ["nothere"]),
    ("fn f() -> void {\nblock0:\n  jump block9\n}\n", 3, 8, ["block9"]),
    ("fn f() -> void {\nblock0:\n  ret\n", 4, 1, ["end of input"]),
    ("; a comment\nfn f() -> void { ; another\nblock0: ; and another\n  ret 5\n}\n", 4, 7, []),
    ("fn f() -> i64 {\nblock0:\n  v0: i64 = const 1\n  v0: i64 = const 2\n  ret v0\n}\n", 4, 3, ["v0"]),
    ("fn f(i64) -> i64 {\nblock0(v0: i32):\n  ret v0\n}\n", 2, 1, ["entry"]),
    ("fn f() -> i64 {\nblock0:\n  v0: i64 = const 1.5\n  ret v0\n}\n", 3, 19, ["1.5"]),
    ("fn f() -> void {\n  ret\n}\n", 2, 3, ["block"]),
    ("fn f() -> void {\nblock0:\n  ret\nblock0:\n  ret\n}\n", 4, 1, ["block0"]),
    ("fn f() -> {i32, i64 {\nblock0:\n  ret\n}\n", 1, 21, []),
]


@pytest.mark.parametrize("text, line, column, words", PARSE_ERRORS)
def test_parse_error_location(text, line, column, words):
    with pytest.raises(rayzor.ParseError) as ei:
        rayzor.parse(text)
    e = ei.value
    assert isinstance(e, rayzor.RayzorError)
    assert (e.line, e.column) == (line, column), str(e)
    for w in words:
        assert w in str(e), str(e)


@pytest.mark.parametrize(
    "text, column",
    [("{i32, }", 7), ("[i32; x]", 7), ("union<i32", 10), ("i65", 1), ("fn(i64) i64", 9), ("i64 i64", 5)],
)
def test_parse_type_errors(text, column):
    with pytest.raises(rayzor.ParseError) as ei:
        rayzor.parse_type(text)
    assert (ei.value.line, ei.value.column) == (1, column), str(ei.value)


@pytest.mark.parametrize(
    "text",
    [
        "{i32, [f64; 4]}",
        "union<i8, {i32, f64}>",
        "extern fn(i64, f64) -> void",
        "fn() -> slice<u8>",
        "[[any; 2]; 3]",
        "str",
    ],
)
def test_parse_type_round_trip(text):
    t = rayzor.parse_type(text)
    assert str(t) == text
    assert rayzor.parse_type(str(t)) == t


def test_parse_accepts_documented_example():
    text = """extern fn labs(i64) -> i64

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
  v6: i64 = const 2
  v7: i64 = sub v0, v6
  v8: i64 = call fib(v7)
  v9: i64 = add v5, v8
  ret v9
}
"""
    m = rayzor.parse(text)
    m.verify()
    assert str(m) == text
    assert m.functions == ["fib"] and m.externs == ["labs"]
    assert rayzor.interpret(m, "fib", 15) == 610
    assert str(programs.fib()) in text  # the builder emits exactly the documented code
