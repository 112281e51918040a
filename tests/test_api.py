"""Behaviour of the public API: `@lldiff.jit` dispatchers, errors raised by compiled code,
specialization, calls between jitted functions, `inspect`, the command line and lazy imports.

Module-level functions below are the test subjects; tests that need a dispatcher state of their
own (signatures, compile_time, globals) wrap them in a fresh `lldiff.jit(...)`.
"""

import math
import os
import subprocess
import sys

import numpy as np
import pytest

import lldiff

THIS_FILE = os.path.abspath(__file__)
REPO_ROOT = os.path.dirname(os.path.dirname(THIS_FILE))

SCALE = 2.0  # read by `scaled` below; see test_module_constants_are_frozen_at_compile_time


# --- subjects -------------------------------------------------------------------------------

def plain_poly(x, n):
    """Not jitted: the target of `python -m lldiff dump`."""
    s = 0.0
    for i in range(n):
        s = s * x + i
    return s


def with_defaults(x, y=2.0, n=3):
    return x * y + n


def scaled(x):
    return x * SCALE


@lldiff.jit
def sum_and_diff(a, b):
    return a + b, a - b


@lldiff.jit
def uses_sum_and_diff(x):
    s, d = sum_and_diff(x, 1.5)  # (float, float) or (int, float)
    p, q = sum_and_diff(3, 4)  # (int, int): a second signature of the callee
    return s * d + p * q


@lldiff.jit
def square(x):
    return x * x


@lldiff.jit
def calls_square_twice(x, n):
    return square(x) + square(n)


@lldiff.jit
def recursive_fact(n):
    if n <= 1:
        return 1
    return n * recursive_fact(n - 1)


@lldiff.jit
def ping(n):
    if n <= 0:
        return 0
    return pong(n - 1)


@lldiff.jit
def pong(n):
    return ping(n) + 1


def fresh(fn):
    return lldiff.jit(fn)


# --- argument checking ----------------------------------------------------------------------

@pytest.mark.parametrize("bad", ["1.0", [1.0], None, 1j, (1.0,)],
                         ids=["str", "list", "None", "complex", "tuple"])
def test_wrong_argument_type_names_the_parameter(bad):
    def f(x, z):
        return x + z

    jf = lldiff.jit(f)
    with pytest.raises(TypeError, match=r"argument 'z'"):
        jf(1.0, bad)
    with pytest.raises(TypeError, match=r"argument 'x'"):
        jf(bad, 1.0)
    # also through the native fast path, once a specialization exists
    assert jf(1.0, 2.0) == 3.0
    with pytest.raises(TypeError, match=r"argument 'z'"):
        jf(1.0, bad)
    assert jf(1.0, 2.0) == 3.0


def test_wrong_argument_count_and_unknown_keyword():
    f = fresh(with_defaults)
    assert f(1.0) == with_defaults(1.0)
    with pytest.raises(TypeError):
        f()
    with pytest.raises(TypeError):
        f(1.0, 2.0, 3, 4)
    with pytest.raises(TypeError):
        f(1.0, q=1.0)
    with pytest.raises(TypeError):
        f(1.0, x=1.0)  # multiple values for x
    assert f(1.0) == with_defaults(1.0)


@pytest.mark.parametrize("args, kwargs", [
    ((1.5,), {}),
    ((1.5, 3.0), {}),
    ((1.5,), {"n": 7}),
    ((), {"x": 2, "y": 5}),
    ((2,), {"n": -1, "y": 0.25}),
    ((True,), {"y": False, "n": True}),
])
def test_keywords_and_defaults_match_python(args, kwargs):
    f = fresh(with_defaults)
    got = f(*args, **kwargs)
    want = with_defaults(*args, **kwargs)
    assert got == want and type(got) is type(want)


def test_numpy_scalars_are_accepted():
    def f(x, n, b):
        return x * n if b else x - n

    jf = lldiff.jit(f)
    got = jf(np.float64(1.5), np.int64(4), np.bool_(True))
    assert got == 6.0 and type(got) is float
    assert jf(np.float64(1.5), np.int64(4), np.bool_(False)) == -2.5
    assert jf(np.float64(0.5), np.int64(4), np.bool_(True)) == f(0.5, 4, True)
    # numpy scalars specialize like the Python scalars they hold
    assert len(jf.signatures) == 1
    assert jf(1.5, 4, True) == 6.0
    assert len(jf.signatures) == 1
    r = lldiff.jit(_plus_one)(np.int64(41))
    assert r == 42 and type(r) is int


def _plus_one(n):
    return n + 1


# --- runtime errors from compiled code ------------------------------------------------------

def _floordiv(a, b):
    return a // b


def _mod(a, b):
    return a % b


def _truediv(a, b):
    return a / b


def _pow(a, b):
    return a ** b


@pytest.mark.parametrize("fn, bad, good", [
    (_floordiv, (7, 0), (7, 2)),
    (_mod, (7, 0), (-7, 2)),
    (_truediv, (1.0, 0.0), (1.0, 4.0)),
    (_truediv, (1, 0), (1, 4)),
    (_floordiv, (1.0, 0.0), (7.5, 2.0)),
    (_mod, (1.0, 0.0), (-7.5, 2.0)),
    (_pow, (0.0, -1), (2.0, -1)),
    (_pow, (0.0, -1.0), (4.0, -0.5)),
], ids=["int//0", "int%0", "float/0.0", "int/0", "float//0.0", "float%0.0", "0.0**-1",
        "0.0**-1.0"])
def test_zero_division_raises_and_function_still_works(fn, bad, good):
    f = lldiff.jit(fn)
    assert f(*good) == fn(*good)
    with pytest.raises(ZeroDivisionError):
        fn(*bad)  # Python agrees
    with pytest.raises(ZeroDivisionError):
        f(*bad)
    assert f(*good) == fn(*good)  # no sticky error state
    with pytest.raises(ZeroDivisionError):
        f(*bad)


def _to_int(x):
    return int(x)


def _factorial(n):
    return math.factorial(n)


def test_int_of_nan_and_inf():
    f = lldiff.jit(_to_int)
    with pytest.raises(ValueError):
        f(math.nan)
    with pytest.raises(OverflowError):
        f(math.inf)
    with pytest.raises(OverflowError):
        f(-math.inf)
    assert f(-2.75) == -2 and f(1e18) == 10 ** 18


def test_factorial_of_negative_runtime_argument():
    f = lldiff.jit(_factorial)
    with pytest.raises(ValueError):
        f(-1)
    assert f(5) == 120 and f(0) == 1


def test_int_power_with_negative_exponent_raises_value_error():
    f = lldiff.jit(_pow)
    assert f(3, 4) == 81
    with pytest.raises(ValueError):
        f(2, -1)


@pytest.mark.parametrize("big", [2 ** 63, -2 ** 63 - 1, 2 ** 64, 10 ** 30, -10 ** 30])
def test_integers_outside_64_bits_raise_overflow(big):
    f = lldiff.jit(_to_int)
    assert f(1) == 1
    with pytest.raises(OverflowError):
        f(big)
    assert f(2 ** 63 - 1) == 2 ** 63 - 1
    assert f(-2 ** 63) == -2 ** 63


def test_int_arithmetic_wraps_at_64_bits():
    def f(a, b):
        return a * b
    jf = lldiff.jit(f)
    assert jf(2 ** 62, 4) == 0
    assert jf(2 ** 62, 2) == -2 ** 63


# --- specialization ---------------------------------------------------------------------------

def test_one_specialization_per_signature():
    f = fresh(square.py_func)
    assert f.signatures == []
    assert f(1.5) == 2.25
    assert len(f.signatures) == 1
    t_float = f.compile_time
    assert t_float > 0
    r = f(3)
    assert r == 9 and type(r) is int
    assert len(f.signatures) == 2
    t_int = f.compile_time
    assert t_int > 0
    for _ in range(3):
        assert f(2.0) == 4.0
        assert f(5) == 25
    assert len(f.signatures) == 2
    assert f.compile_time == t_int  # no recompilation
    assert f(True) == 1
    assert len(f.signatures) == 3


# --- calls between jitted functions ------------------------------------------------------------

def test_tuple_return_unpacked_in_caller_and_two_callee_signatures():
    for x in (2.5, 4, -1.25):
        s, d = x + 1.5, x - 1.5
        want = s * d + 7 * -1
        got = uses_sum_and_diff(x)
        assert got == want
        assert uses_sum_and_diff.interpret(x) == want
    sigs = {tuple(str(t) for t in s) for s in sum_and_diff.signatures}
    assert ("i64", "i64") in sigs
    assert ("f64", "f64") in sigs or ("i64", "f64") in sigs


def test_tuple_return_to_python():
    r = sum_and_diff(5, 3)
    assert r == (8, 2) and type(r) is tuple and all(type(v) is int for v in r)
    r = sum_and_diff(0.5, 3)
    assert r == (3.5, -2.5) and all(type(v) is float for v in r)


def test_callee_used_with_two_signatures():
    assert calls_square_twice(1.5, 3) == 2.25 + 9
    assert calls_square_twice(2, 3) == 13
    assert type(calls_square_twice(2, 3)) is int
    sigs = {tuple(str(t) for t in s) for s in square.signatures}
    assert {("f64",), ("i64",)} <= sigs
    # the caller's IR calls the callee through func.call
    assert "func.call" in calls_square_twice.inspect("ir", 1.5, 3)


def test_recursion_is_a_compile_error():
    with pytest.raises(lldiff.CompileError, match="recursion") as info:
        recursive_fact(5)
    # reported at the recursive call, with the user's file and line
    assert info.value.filename.endswith("test_api.py")
    assert "recursive_fact(n - 1)" in info.value.source_line
    with pytest.raises(lldiff.CompileError, match="recursion"):
        recursive_fact(5)  # still an error the second time, not a half-built state


def test_mutual_recursion_is_a_compile_error():
    with pytest.raises(lldiff.CompileError, match="recursion"):
        ping(3)


# --- inspect ----------------------------------------------------------------------------------

def inspect_target(x):
    i = 0
    while x > 1.0:
        x = x / 2
        i += 1
    return i


def test_inspect_stages():
    f = fresh(inspect_target)
    ir = f.inspect("ir", 10.0)
    assert "func.func" in ir and "scf.while" in ir and "arith.divf" in ir
    llvm = f.inspect("llvm", 10.0)
    assert "define" in llvm
    opt = f.inspect("llvm-opt", 10.0)
    assert "define" in opt
    asm = f.inspect("asm", 10.0)
    assert "inspect_target" in asm
    assert any(line.strip().startswith("ret") for line in asm.splitlines())
    # inspecting does not change what the function computes
    assert f(10.0) == inspect_target(10.0) == 4


def test_inspect_without_args_uses_first_specialization():
    f = fresh(inspect_target)
    with pytest.raises(ValueError):
        f.inspect("ir")
    f(3.0)
    assert "func.func" in f.inspect("ir")
    assert "f64" in f.inspect("ir")


def test_inspect_bad_stage():
    f = fresh(inspect_target)
    with pytest.raises(ValueError):
        f.inspect("mlir", 1.0)
    with pytest.raises(ValueError):
        f.inspect("bogus")


# --- command line -------------------------------------------------------------------------------

def _run_cli(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "lldiff", *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=timeout)


def test_cli_dump_ir():
    p = _run_cli("dump", "tests/test_api.py:plain_poly", "--sig", "float,int", "--stage", "ir")
    assert p.returncode == 0, p.stderr
    assert "func.func" in p.stdout
    assert "scf.for" in p.stdout
    assert "(%x: f64, %n: i64) -> f64" in p.stdout


def test_cli_dump_asm():
    p = _run_cli("dump", "tests/test_api.py:plain_poly", "--sig", "float,int", "--stage", "asm")
    assert p.returncode == 0, p.stderr
    assert "plain_poly" in p.stdout


def test_cli_demo():
    p = _run_cli("demo")
    assert p.returncode == 0, p.stderr
    assert "J_v" in p.stdout
    # the forward-mode table: each row's lldiff derivative agrees with scipy's
    rows = [line.split() for line in p.stdout.split("forward mode:")[1].split("reverse mode:")[0]
            .splitlines() if line.strip() and line.split()[0].isdigit()]
    assert len(rows) == 12
    for v, z, dy, fd, ref, diff in rows:
        assert abs(float(dy) - float(ref)) <= 1e-12, (v, z, dy, ref)
        assert abs(float(fd) - float(ref)) <= 1e-6
    # the reverse-mode table (@jit_grad): value and gradient, the gradient against scipy
    rows = [line.split() for line in p.stdout.split("reverse mode:")[1].split("IR of")[0]
            .splitlines() if line.strip() and line.split()[0].isdigit()]
    assert len(rows) == 12
    for v, z, y, g, ref, diff in rows:
        assert abs(float(g) - float(ref)) <= 1e-12, (v, z, g, ref)
    assert ".jvp.01(" in p.stdout
    assert ".vjp.01(" in p.stdout and '"ad.tape.push"' in p.stdout


# --- lazy imports -------------------------------------------------------------------------------

def test_import_is_lazy():
    code = ("import sys, lldiff\n"
            "@lldiff.jit\n"
            "def f(x):\n"
            "    return x + 1\n"
            "heavy = [m for m in ('llvmlite.binding', 'numpy', 'numba') if m in sys.modules]\n"
            "print('HEAVY', heavy)\n")
    p = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "HEAVY []" in p.stdout, p.stdout


# --- values ------------------------------------------------------------------------------------

def _is_small(x):
    return x < 2.0


def _logic(a, b):
    return a and not b


def _ident(b):
    return b


def test_bools_round_trip():
    f = lldiff.jit(_is_small)
    assert f(1.0) is True
    assert f(3.0) is False
    g = lldiff.jit(_logic)
    for a in (True, False):
        for b in (True, False):
            assert g(a, b) is _logic(a, b)
    h = lldiff.jit(_ident)
    assert h(True) is True and h(False) is False


def _mixed(x, n, b):
    s = 0.0
    for i in range(n):
        if b and i % 2 == 0:
            s += x / (i + 1)
        else:
            s -= x * i
    return s, n // 3, x > s


@pytest.mark.parametrize("args", [(1.5, 7, True), (-2.0, 4, False), (0.1, 0, True),
                                  (3, 5, True)])
def test_compiled_equals_interpreter(args):
    f = lldiff.jit(_mixed)
    got = f(*args)
    assert got == f.interpret(*args)
    assert got == _mixed(*args)


def test_module_constants_are_frozen_at_compile_time(monkeypatch):
    # Documented behaviour: module-level numbers are read once, when a specialization is
    # compiled; rebinding the global afterwards does not change the compiled function.
    f = fresh(scaled)
    assert f(1.5) == 3.0
    monkeypatch.setitem(globals(), "SCALE", 5.0)
    assert scaled(1.5) == 7.5  # plain Python sees the new value
    assert f(1.5) == 3.0  # the compiled specialization does not
    assert f.interpret(1.5) == 3.0


def _void(x):
    y = x + 1.0


def _void_early(x):
    if x > 0:
        return
    y = x * 2


def test_void_function_returns_none():
    assert lldiff.jit(_void)(1.0) is None
    f = lldiff.jit(_void_early)
    assert f(1.0) is None and f(-1.0) is None
    assert f.interpret(1.0) is None


def test_lldiff_timing_reports_every_stage():
    code = ("import lldiff\n"
            "from lldiff.__main__ import poor_besselj\n"
            "f = lldiff.jit(poor_besselj)\n"
            "f(2, 0.5)\n"
            "lldiff.grad(f, argnums=1)(2, 0.5)\n")
    env = dict(os.environ, LLDIFF_TIMING="1")
    p = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True,
                       text=True, timeout=120, env=env)
    assert p.returncode == 0, p.stderr
    lines = [l for l in p.stderr.splitlines() if l.startswith("lldiff: poor_besselj")]
    assert len(lines) == 2 and " primal: " in lines[0] and " grad: " in lines[1], p.stderr
    for stage in ("frontend", "canonicalize", "codegen", "llvm-opt", "jit"):
        assert stage in lines[0]
    for stage in ("vjp", "tape", "llvm-opt", "jit"):
        assert stage in lines[1]
    total = float(lines[0].split(": ")[2].split(" ms")[0])
    parts = lines[0].split("(")[2].rstrip(")").split("; ")
    assert abs(sum(float(x.split()[-1]) for x in parts) - total) < 0.5
    env.pop("LLDIFF_TIMING")
    p = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True,
                       text=True, timeout=120, env=env)
    assert p.returncode == 0 and "lldiff:" not in p.stderr
