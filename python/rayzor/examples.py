"""MIR programs built through the public API, shared by the demo, benchmarks and tests."""

from __future__ import annotations

import rayzor


def fib_module() -> rayzor.Module:
    """Recursive ``fib(n) = n if n < 2 else fib(n-1) + fib(n-2)`` over i64."""
    m = rayzor.Module()
    f = m.function("fib", [rayzor.i64], rayzor.i64)
    (n,) = f.params
    base, rec = f.block(), f.block()
    f.brif(f.lt(n, 2), base, rec)
    f.switch_to(base)
    f.ret(n)
    f.switch_to(rec)
    a = f.call("fib", n - 1)
    b = f.call("fib", n - 2)
    f.ret(a + b)
    m.verify()
    return m


def loop_sum_module() -> rayzor.Module:
    """``sum(i ^ (i >> 3) for i in range(n))`` with wrapping i64 arithmetic."""
    m = rayzor.Module()
    f = m.function("loop_sum", [rayzor.i64], rayzor.i64)
    (n,) = f.params
    s = f.var("s", rayzor.i64, 0)
    i = f.var("i", rayzor.i64, 0)
    head, body, done = f.block(), f.block(), f.block()
    f.jump(head)
    f.switch_to(head)
    f.brif(f.lt(f.get(i), n), body, done)
    f.switch_to(body)
    iv = f.get(i)
    f.set(s, f.get(s) + (iv ^ (iv >> 3)))
    f.set(i, iv + 1)
    f.jump(head)
    f.switch_to(done)
    f.ret(f.get(s))
    m.verify()
    return m


def py_fib(n: int) -> int:
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a
