"""Differential tests: every corpus function, on every input, in four modes.

For each `Case(fn, inputs)` of `tests/corpus.py` and each argument tuple, this runs

* plain Python: ``fn(*args)`` (the reference),
* lldiff's IR interpreter: ``lldiff.jit(fn, opt=0).interpret(*args)``,
* native code at opt=0 and at opt=2: ``lldiff.jit(fn, opt=0)(*args)`` and
  ``lldiff.jit(fn, opt=2)(*args)``,

and checks that they agree:

* Python raises ZeroDivisionError -> every lldiff mode raises ZeroDivisionError.
* Python raises anything else (math domain/range errors, int(nan), ...) or returns a complex ->
  lldiff follows IEEE/C there, so only the compiled results are compared, with the interpreter
  (same exception type, or values within 1 ulp).
* Otherwise every mode returns Python's value: tuples elementwise; floats within 1 ulp (NaN
  matches NaN, signed zeros are not distinguished, infinities must be equal); an int or bool
  compared with an int, bool or float compares exactly by value (so int/float unification is
  accepted, lost integer precision is not). Functions that use math.gamma/math.lgamma or numpy
  transcendental functions may differ from Python by up to 4 ulp (CPython has its own gamma and
  numpy its own SIMD libm; lldiff calls the C library); the compiled code must still be within
  1 ulp of the interpreter.

Corpus functions call each other through the corpus module's globals. lldiff resolves callees
through a function's globals at compile time and requires them to be jit dispatchers, so for each
opt level the fixture clones every corpus function into a copied globals dict in which every
corpus function name is bound to its dispatcher.
"""

import ast
import inspect
import math
import os
import sys
import types
from collections import Counter

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import corpus  # noqa: E402

ULPS = 1  # default tolerance, and always the tolerance between interpreter and compiled code
LOOSE_ULPS = 4  # lldiff vs plain Python for functions using gamma/lgamma or numpy libm
OPT_LEVELS = (0, 2)

# numpy attributes whose values lldiff computes with the C library while numpy has its own
# implementation (results may differ in the last bits).
_NP_EXACT = {"pi", "e", "abs", "fabs", "floor", "ceil", "trunc", "sqrt", "inf", "nan"}
_LOOSE_MATH = {"gamma", "lgamma"}


# --- helpers ---------------------------------------------------------------------------------

def _corpus_functions():
    return {name: obj for name, obj in vars(corpus).items()
            if isinstance(obj, types.FunctionType) and obj.__module__ == corpus.__name__}


FUNCS = _corpus_functions()
CORPUS_SOURCE = inspect.getsource(corpus)
CORPUS_TREE = ast.parse(CORPUS_SOURCE)
FUNC_DEFS = {n.name: n for n in CORPUS_TREE.body if isinstance(n, ast.FunctionDef)}


def _attr_uses(node, module):
    return {n.attr for n in ast.walk(node)
            if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)
            and n.value.id == module}


def _callees(node):
    return {n.func.id for n in ast.walk(node)
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in FUNCS}


def _is_loose(name, seen=None):
    """Whether `name` (or a corpus function it calls) uses gamma/lgamma or numpy libm."""
    seen = set() if seen is None else seen
    if name in seen:
        return False
    seen.add(name)
    node = FUNC_DEFS[name]
    if _attr_uses(node, "math") & _LOOSE_MATH or _attr_uses(node, "np") - _NP_EXACT:
        return True
    return any(_is_loose(c, seen) for c in _callees(node))


def _norm(v):
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, tuple):
        return tuple(_norm(e) for e in v)
    return v


def _has_complex(v):
    if isinstance(v, tuple):
        return any(_has_complex(e) for e in v)
    return isinstance(v, complex)


def close(a, b, ulps=ULPS):
    """Whether results `a` and `b` agree (see the module docstring)."""
    a, b = _norm(a), _norm(b)
    if isinstance(a, tuple) or isinstance(b, tuple):
        return (isinstance(a, tuple) and isinstance(b, tuple) and len(a) == len(b)
                and all(close(x, y, ulps) for x, y in zip(a, b)))
    if not isinstance(a, (int, float)) or not isinstance(b, (int, float)):
        return False  # complex, None, ...
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        if a == b:
            return True  # also 0.0 == -0.0 and equal infinities
        if math.isinf(a) or math.isinf(b):
            return False
        return abs(a - b) <= ulps * math.ulp(max(abs(a), abs(b)))
    return a == b  # int/bool with int/bool/float: exact by value


class Outcome:
    __slots__ = ("value", "exc")

    def __init__(self, value=None, exc=None):
        self.value = value
        self.exc = exc

    def __repr__(self):
        if self.exc is not None:
            return f"raised {type(self.exc).__name__}: {self.exc}"
        return f"returned {self.value!r}"


def run(f, args):
    try:
        with np.errstate(all="ignore"):
            return Outcome(value=_norm(f(*args)))
    except Exception as e:  # noqa: BLE001 - every exception is an outcome to compare
        return Outcome(exc=e)


def _params():
    out = []
    for case in corpus.CASES:
        for i, args in enumerate(case.inputs):
            out.append(pytest.param(case.fn.__name__, args, id=f"{case.fn.__name__}-{i}"))
    return out


# --- the jitted namespaces -------------------------------------------------------------------

def _jit_namespace(lldiff, opt):
    ns = dict(vars(corpus))
    for name, fn in FUNCS.items():
        clone = types.FunctionType(fn.__code__, ns, fn.__name__, fn.__defaults__, fn.__closure__)
        clone.__qualname__ = fn.__qualname__
        clone.__doc__ = fn.__doc__
        ns[name] = lldiff.jit(clone, opt=opt)
    return ns


@pytest.fixture(scope="module")
def jitted():
    import lldiff

    return {opt: _jit_namespace(lldiff, opt) for opt in OPT_LEVELS}


# --- the differential test -------------------------------------------------------------------

@pytest.mark.parametrize("name,args", _params())
def test_corpus(name, args, jitted):
    import lldiff

    py = run(FUNCS[name], args)
    d0, d2 = jitted[0][name], jitted[2][name]
    modes = {
        "interpret": run(d0.interpret, args),
        "opt0": run(d0, args),
        "opt2": run(d2, args),
    }
    for mode, out in modes.items():
        if isinstance(out.exc, lldiff.CompileError):
            pytest.fail(f"{name}{args!r}: {mode}: CompileError:\n{out.exc}")
    report = f"{name}{args!r}: python {py}; " + "; ".join(f"{m} {o}" for m, o in modes.items())

    if isinstance(py.exc, ZeroDivisionError):
        for mode, out in modes.items():
            assert isinstance(out.exc, ZeroDivisionError), \
                f"{mode} must raise ZeroDivisionError\n{report}"
        return

    interp = modes["interpret"]
    if py.exc is not None or _has_complex(py.value):
        # lldiff follows IEEE/C here: compiled code must match the interpreter
        for mode in ("opt0", "opt2"):
            out = modes[mode]
            if interp.exc is not None:
                assert type(out.exc) is type(interp.exc), \
                    f"{mode} differs from interpreter\n{report}"
            else:
                assert out.exc is None and close(interp.value, out.value, ULPS), \
                    f"{mode} differs from interpreter\n{report}"
        return

    assert py.exc is None
    tol = LOOSE_ULPS if _is_loose(name) else ULPS
    for mode, out in modes.items():
        assert out.exc is None, f"{mode} raised where Python returned\n{report}"
        assert close(py.value, out.value, tol), f"{mode} differs from Python\n{report}"
    for mode in ("opt0", "opt2"):
        assert close(interp.value, modes[mode].value, ULPS), \
            f"{mode} differs from interpreter\n{report}"


# --- checks on the corpus itself (no lldiff needed) -------------------------------------------

def test_comparator():
    assert close(1.0, 1.0 + 2 ** -52)
    assert not close(1.0, 1.0 + 2 ** -51)
    assert close(math.nan, math.nan) and not close(math.nan, 1.0)
    assert close(0.0, -0.0) and close(math.inf, math.inf) and not close(math.inf, -math.inf)
    assert not close(math.inf, 1.7976931348623157e308)
    assert close(3, 3.0) and close(True, 1) and not close(2 ** 53 + 1, 2.0 ** 53)
    assert close((1, 2.5, True), (1.0, 2.5, 1)) and not close((1, 2), (1, 2, 3))
    assert not close(1.0, (1.0,)) and not close(1j, 1j)
    assert close(np.float64(0.5), 0.5) and close(np.int64(3), 3)


def test_case_count_and_shape():
    assert len(corpus.CASES) >= 60
    names = [c.fn.__name__ for c in corpus.CASES]
    assert len(set(names)) == len(names), "duplicate corpus functions in CASES"
    assert set(names) == set(FUNCS), "every corpus function needs a Case (and vice versa)"
    for case in corpus.CASES:
        assert case.inputs, case.fn.__name__
        sig = inspect.signature(case.fn)
        assert 1 <= len(sig.parameters) <= 3, (case.fn.__name__, len(sig.parameters))
        for p in sig.parameters.values():
            assert p.default is p.empty and p.kind is p.POSITIONAL_OR_KEYWORD
        for args in case.inputs:
            assert isinstance(args, tuple) and len(args) == len(sig.parameters), (case.fn, args)
            for a in args:
                assert type(a) in (int, float, bool), (case.fn, args)
                if type(a) is int:
                    assert -2 ** 63 <= a < 2 ** 63


def test_python_reference_outcomes():
    """The corpus behaves as intended in plain Python: only the expected exception types,
    results of supported types, and enough edge cases of each kind."""
    kinds = Counter()
    for case in corpus.CASES:
        for args in case.inputs:
            out = run(case.fn, args)
            if out.exc is not None:
                assert type(out.exc) in (ZeroDivisionError, ValueError, OverflowError), \
                    (case.fn.__name__, args, out)
                kinds[type(out.exc).__name__] += 1
                continue
            vals = out.value if isinstance(out.value, tuple) else (out.value,)
            for v in vals:
                assert type(v) in (int, float, bool, complex), (case.fn.__name__, args, out)
                if type(v) is int:
                    assert -2 ** 63 <= v < 2 ** 63, (case.fn.__name__, args, out)
            kinds["complex" if _has_complex(out.value) else "ok"] += 1
    assert kinds["ZeroDivisionError"] >= 15, kinds
    assert kinds["ValueError"] >= 5 and kinds["OverflowError"] >= 3 and kinds["complex"] >= 2, kinds

    flat = [a for case in corpus.CASES for args in case.inputs for a in args]
    floats = [a for a in flat if type(a) is float]
    ints = [a for a in flat if type(a) is int]
    assert any(a == 0.0 and math.copysign(1, a) > 0 for a in floats)
    assert any(a == 0.0 and math.copysign(1, a) < 0 for a in floats)
    assert any(math.isnan(a) for a in floats)
    assert math.inf in floats and -math.inf in floats
    assert any(a < 0 for a in floats) and any(a < 0 for a in ints) and 0 in ints
    assert any(abs(a) >= 1e15 for a in ints) and any(abs(a) >= 1e15 for a in floats)
    assert any(type(a) is bool for a in flat)


def _loop_has_return(loop):
    return any(isinstance(n, ast.Return) for n in ast.walk(loop))


def test_corpus_covers_the_subset():
    """Scan the corpus source: each construct of the supported subset appears somewhere."""
    funcs = list(FUNC_DEFS.values())
    nodes = [n for f in funcs for n in ast.walk(f)]

    def has(pred):
        return any(pred(n) for n in nodes)

    missing = []

    def need(label, ok):
        if not ok:
            missing.append(label)

    # statements
    need("while", has(lambda n: isinstance(n, ast.While)))
    need("while True", has(lambda n: isinstance(n, ast.While) and isinstance(n.test, ast.Constant)
                           and n.test.value is True))
    need("for", has(lambda n: isinstance(n, ast.For)))
    need("break", has(lambda n: isinstance(n, ast.Break)))
    need("continue", has(lambda n: isinstance(n, ast.Continue)))
    need("pass", has(lambda n: isinstance(n, ast.Pass)))
    need("return inside for", has(lambda n: isinstance(n, ast.For) and _loop_has_return(n)))
    need("return inside while", has(lambda n: isinstance(n, ast.While) and _loop_has_return(n)))
    need("return inside nested loops", has(
        lambda n: isinstance(n, (ast.For, ast.While)) and any(
            isinstance(m, (ast.For, ast.While)) and _loop_has_return(m)
            for b in n.body for m in ast.walk(b))))
    need("early return (return not last)", any(
        any(isinstance(n, ast.Return) for s in f.body[:-1] for n in ast.walk(s)) for f in funcs))
    need("elif", has(lambda n: isinstance(n, ast.If) and len(n.orelse) == 1
                     and isinstance(n.orelse[0], ast.If)))
    need("nested if", has(lambda n: isinstance(n, ast.If) and any(
        isinstance(s, ast.If) for s in n.body)))
    need("tuple unpacking", has(lambda n: isinstance(n, ast.Assign)
                                and isinstance(n.targets[0], ast.Tuple)))
    need("tuple unpacking from a call", has(
        lambda n: isinstance(n, ast.Assign) and isinstance(n.targets[0], ast.Tuple)
        and isinstance(n.value, ast.Call)))
    need("tuple return", has(lambda n: isinstance(n, ast.Return)
                             and isinstance(n.value, ast.Tuple)))
    # operators
    for op in (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow):
        need(f"BinOp {op.__name__}", has(lambda n, op=op: isinstance(n, ast.BinOp)
                                         and isinstance(n.op, op)))
        need(f"AugAssign {op.__name__}", has(lambda n, op=op: isinstance(n, ast.AugAssign)
                                             and isinstance(n.op, op)))
    for op in (ast.USub, ast.UAdd, ast.Not):
        need(f"UnaryOp {op.__name__}", has(lambda n, op=op: isinstance(n, ast.UnaryOp)
                                           and isinstance(n.op, op)))
    for op in (ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.Eq, ast.NotEq):
        need(f"Compare {op.__name__}", has(lambda n, op=op: isinstance(n, ast.Compare)
                                           and any(isinstance(o, op) for o in n.ops)))
    need("chained comparison", has(lambda n: isinstance(n, ast.Compare) and len(n.ops) >= 2))
    need("chained comparison of 4 operands", has(lambda n: isinstance(n, ast.Compare)
                                                 and len(n.ops) >= 3))
    need("and", has(lambda n: isinstance(n, ast.BoolOp) and isinstance(n.op, ast.And)))
    need("or", has(lambda n: isinstance(n, ast.BoolOp) and isinstance(n.op, ast.Or)))
    need("conditional expression", has(lambda n: isinstance(n, ast.IfExp)))
    need("nested conditional expression", has(lambda n: isinstance(n, ast.IfExp) and any(
        isinstance(m, ast.IfExp) for m in ast.walk(n.orelse))))
    # range forms
    ranges = [n for n in nodes if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
              and n.func.id == "range"]
    for k in (1, 2, 3):
        need(f"range with {k} args", any(len(r.args) == k for r in ranges))
    need("range with negative constant step", any(
        len(r.args) == 3 and isinstance(r.args[2], ast.UnaryOp)
        and isinstance(r.args[2].op, ast.USub)
        and isinstance(r.args[2].operand, ast.Constant) for r in ranges))
    need("range with non-constant step", any(
        len(r.args) == 3 and not isinstance(r.args[2], (ast.Constant, ast.UnaryOp))
        for r in ranges))
    # builtins
    calls = [n for n in nodes if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)]
    for b in ("abs", "min", "max", "float", "int", "round", "bool"):
        need(f"builtin {b}", any(c.func.id == b for c in calls))
    need("min with 3 args", any(c.func.id == "min" and len(c.args) >= 3 for c in calls))
    need("max with 3 args", any(c.func.id == "max" and len(c.args) >= 3 for c in calls))
    # math and numpy
    math_used = set().union(*(_attr_uses(f, "math") for f in funcs))
    for m in ("sin cos tan asin acos atan atan2 sinh cosh tanh asinh acosh atanh hypot exp expm1 "
              "exp2 log log2 log10 log1p sqrt cbrt pow erf erfc lgamma gamma floor ceil trunc "
              "fabs copysign fmod isnan isinf isfinite factorial pi e tau inf nan").split():
        need(f"math.{m}", m in math_used)
    np_used = set().union(*(_attr_uses(f, "np") for f in funcs))
    for m in ("sin", "cos", "exp", "log", "sqrt", "abs", "floor", "pi"):
        need(f"np.{m}", m in np_used)
    # module-level constants and calls between corpus functions
    module_consts = {t.id for n in CORPUS_TREE.body if isinstance(n, ast.Assign)
                     for t in n.targets if isinstance(t, ast.Name)
                     and isinstance(getattr(corpus, t.id), (int, float))}
    names_used = {n.id for n in nodes if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    need("module-level float constant", any(isinstance(getattr(corpus, c), float) and
                                            type(getattr(corpus, c)) is float
                                            for c in module_consts & names_used))
    need("module-level int constant", any(type(getattr(corpus, c)) is int
                                          for c in module_consts & names_used))
    need("module-level bool constant", any(type(getattr(corpus, c)) is bool
                                           for c in module_consts & names_used))
    need("call to another corpus function", any(_callees(f) for f in funcs))
    need("a corpus function calling a function that calls another",
         any(_callees(FUNC_DEFS[c]) for f in funcs for c in _callees(f)))
    need("the seed besselj", "besselj" in FUNC_DEFS)
    assert not missing, f"corpus lacks: {missing}"
