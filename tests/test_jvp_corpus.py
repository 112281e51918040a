"""The whole corpus through forward mode, against 50-digit finite differences.

For every corpus function with a float argument and every input on which plain Python returns
finite floats, the tangent `lldiff.jvp` computes along a random direction is compared with a
central finite difference of the *plain Python function* evaluated in mpmath at 50 digits
(h = 1e-20): the function's source is re-executed with `math`/`np` bound to mpmath and `//`,
`%` rewritten to exact helpers, so the oracle shares no code with lldiff. Points where the
function is not differentiable (the one-sided differences disagree: a branch, floor, a loop
that changes its trip count) are skipped; at least most points of the corpus are checked.
The IR interpreter runs the same jvp IR and must agree with the compiled code. Reverse mode
(the gradient of output k, dotted with the direction) is checked against the same reference.
"""

import ast
import inspect
import math
import os
import random
import signal
import sys
import types

import mpmath
import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import corpus  # noqa: E402

from lldiff.ir import interpret  # noqa: E402

mp = mpmath.mp
mpf = mpmath.mpf
H = mpf("1e-20")
RTOL = 1e-8

FUNCS = {name: obj for name, obj in vars(corpus).items()
         if isinstance(obj, types.FunctionType) and obj.__module__ == corpus.__name__}


# --- the mpmath twin of the corpus ---------------------------------------------------------

def _fmod(a, b):
    if isinstance(a, int) and isinstance(b, int):
        return math.fmod(a, b)
    q = mpf(a) / b
    return a - b * (mp.floor(q) if q >= 0 else mp.ceil(q))


def _floordiv(a, b):
    if isinstance(a, int) and isinstance(b, int):
        return a // b
    if b == 0:
        raise ZeroDivisionError("float floor division by zero")
    return mp.floor(mpf(a) / b)


def _mod(a, b):
    if isinstance(a, int) and isinstance(b, int):
        return a % b
    if b == 0:
        raise ZeroDivisionError("float modulo")
    return a - b * mp.floor(mpf(a) / b)


def _copysign(a, b):
    return abs(mpf(a)) if b > 0 or (b == 0 and math.copysign(1.0, float(b)) > 0) else -abs(mpf(a))


MP_MATH = types.SimpleNamespace(
    pi=math.pi, e=math.e, tau=math.tau, inf=math.inf, nan=math.nan,
    sin=mp.sin, cos=mp.cos, tan=mp.tan, asin=mp.asin, acos=mp.acos, atan=mp.atan,
    atan2=mp.atan2, sinh=mp.sinh, cosh=mp.cosh, tanh=mp.tanh, asinh=mp.asinh, acosh=mp.acosh,
    atanh=mp.atanh, exp=mp.exp, expm1=mp.expm1, exp2=lambda x: mp.power(2, x),
    log=lambda x, base=None: mp.log(x) if base is None else mp.log(x) / mp.log(base),
    log2=lambda x: mp.log(x, 2), log10=mp.log10, log1p=mp.log1p, sqrt=mp.sqrt, cbrt=mp.cbrt,
    erf=mp.erf, erfc=mp.erfc, gamma=mp.gamma, lgamma=lambda x: mp.log(abs(mp.gamma(x))),
    fabs=lambda x: abs(mpf(x)), floor=lambda x: int(mp.floor(x)), ceil=lambda x: int(mp.ceil(x)),
    trunc=lambda x: int(x), copysign=_copysign, hypot=mp.hypot, fmod=_fmod,
    pow=lambda a, b: mpf(a) ** b, factorial=math.factorial, isnan=mp.isnan, isinf=mp.isinf,
    isfinite=mp.isfinite)

MP_NP = types.SimpleNamespace(
    pi=np.pi, e=np.e, sin=mp.sin, cos=mp.cos, tan=mp.tan, tanh=mp.tanh, sqrt=mp.sqrt,
    log=mp.log, exp=mp.exp, floor=mp.floor, ceil=mp.ceil, abs=abs)


class _ExactOps(ast.NodeTransformer):
    """a // b -> __floordiv(a, b), a % b -> __mod(a, b), also in augmented assignments."""

    HELPERS = {ast.FloorDiv: "__floordiv", ast.Mod: "__mod"}

    def visit_BinOp(self, node):
        self.generic_visit(node)
        helper = self.HELPERS.get(type(node.op))
        if helper is None:
            return node
        return ast.copy_location(ast.Call(ast.Name(helper, ast.Load()), [node.left, node.right],
                                          []), node)

    def visit_AugAssign(self, node):
        self.generic_visit(node)
        helper = self.HELPERS.get(type(node.op))
        if helper is None:
            return node
        load = ast.Name(node.target.id, ast.Load())
        call = ast.Call(ast.Name(helper, ast.Load()), [load, node.value], [])
        return ast.copy_location(ast.Assign([node.target], call), node)


def _mp_namespace():
    ns = dict(vars(corpus))
    ns.update(math=MP_MATH, np=MP_NP, __floordiv=_floordiv, __mod=_mod,
              float=lambda x: x if isinstance(x, mpf) else mpf(x))
    tree = ast.parse(inspect.getsource(corpus))
    defs = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
    mod = ast.fix_missing_locations(_ExactOps().visit(ast.Module(defs, [])))
    exec(compile(mod, "<corpus-mp>", "exec"), ns)
    return ns


# --- the differential test ------------------------------------------------------------------

class _Timeout(Exception):
    pass


def _with_timeout(seconds, fn, *args):
    def handler(signum, frame):
        raise _Timeout()
    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return fn(*args)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _traced(fn, *args):
    """(result, the bytecode path the mpmath twin took): a different path at x +- h than at x
    means x sits on a branch boundary, where a finite difference says nothing about the
    derivative of the branch the program takes."""
    path = []

    def local(frame, event, arg):
        if event == "opcode":
            path.append(frame.f_lasti)
        return local

    def glob(frame, event, arg):
        if frame.f_code.co_filename != "<corpus-mp>":
            return None
        frame.f_trace_opcodes = True
        path.append(frame.f_code.co_name)
        return local

    sys.settrace(glob)
    try:
        out = fn(*args)
    finally:
        sys.settrace(None)
    return out, path


def _as_list(v):
    return list(v) if isinstance(v, tuple) else [v]


@pytest.fixture(scope="module")
def namespaces():
    import lldiff
    ns = dict(vars(corpus))
    for name, fn in FUNCS.items():
        clone = types.FunctionType(fn.__code__, ns, fn.__name__, fn.__defaults__, fn.__closure__)
        ns[name] = lldiff.jit(clone, opt=2)
    return ns, _mp_namespace()


def _cases():
    out = []
    for case in corpus.CASES:
        if any(isinstance(a, float) for args in case.inputs for a in args):
            out.append(pytest.param(case, id=case.fn.__name__))
    return out


STATS = {"checked": 0, "skipped": 0}

# Points where the oracle does not apply, each with the reason: a primitive inside the function
# is not differentiable although the function is smooth there (lldiff differentiates the
# program, finite differences the function), or the float program differs from its mpmath twin.
ORACLE_DOES_NOT_APPLY = {
    ("to_polar", (0.0, -0.0)): "atan2 at the origin has a nan derivative (JAX's convention)",
    ("truthy_float_loop", (5e-324,)): "x / 2 underflows to 0 in floats, never in mpmath",
}


def _finite_float_result(v):
    return all(not isinstance(e, complex) and (not isinstance(e, float) or math.isfinite(e))
               for e in _as_list(v))


def _reverse_directional(d, args, types_, dirs, rtypes, k):
    """(J dirs)_k computed by reverse mode: the vjp seeded with the k-th unit cotangent."""
    mask = [v is not None for v in dirs]
    spec = d._derived(tuple(types_), "grad", mask, seeded=[i == k for i in range(len(rtypes))])
    out = _as_list(spec.entry(*args))[len(rtypes):]
    if len(out) == 1 and isinstance(out[0], tuple):
        out = list(out[0])
    return sum(b * v for b, v in zip(out, [v for v in dirs if v is not None]))


@pytest.mark.parametrize("case", _cases())
def test_jvp_and_vjp_match_mpmath_finite_differences(case, namespaces):
    import lldiff
    jit_ns, mp_ns = namespaces
    name = case.fn.__name__
    d, g = jit_ns[name], mp_ns[name]
    rng = random.Random(name)
    checked = 0
    for args in case.inputs:
        try:
            with np.errstate(all="ignore"):
                py = case.fn(*args)
        except Exception:  # noqa: BLE001 - inputs on which Python raises are not differentiated
            continue
        if not _finite_float_result(py):
            continue
        if not all(math.isfinite(a) for a in args if isinstance(a, float)):
            continue
        types_ = [d._arg_type(f"a{i}", a) for i, a in enumerate(args)]
        dirs = [rng.uniform(-1, 1) if t.is_float else None for t in types_]
        if all(v is None for v in dirs):
            continue
        y, dy = lldiff.jvp(d, args, dirs)
        rtypes = d._ir(tuple(types_)).func.result_types
        # the interpreter on the same jvp IR agrees with the compiled code
        spec = d._derived_ir(tuple(types_), "jvp", [v is not None for v in dirs])
        interp = interpret(spec.module, spec.symbol, list(args) + [v for v in dirs if v is not None])
        native = _as_list(y) + [t for t in _as_list(dy) if t is not None]
        for a, b in zip(interp, native):
            assert a == b or abs(a - b) <= 2 * math.ulp(max(abs(a), abs(b))) or a != a and b != b, \
                f"{name}{args}: interpreter {interp} != compiled {native}"

        if (name, args) in ORACLE_DOES_NOT_APPLY:
            STATS["skipped"] += 1
            continue
        # enough digits that x + h*dx and f(x + h*dx) - f(x) are exact for huge x and f(x)
        big = max([abs(a) for a in args if isinstance(a, float)] + [abs(v) for v in
                   _as_list(py) if isinstance(v, float)] + [1.0])
        mp.dps = 50 + 2 * int(math.log10(big))

        def at(t):
            xs = [mpf(a) + t * mpf(v) if v is not None else a for a, v in zip(args, dirs)]
            out, path = _traced(g, *xs)
            return _as_list(out), path
        try:
            (lo, p_lo), (mid, p_mid), (hi, p_hi) = (_with_timeout(5, at, t) for t in (-H, mpf(0), H))
        except (_Timeout, ZeroDivisionError, ValueError, OverflowError, TypeError):
            STATS["skipped"] += 1
            continue
        if not p_lo == p_mid == p_hi:
            STATS["skipped"] += 1  # on a branch boundary
            continue
        for k, (t, tangent) in enumerate(zip(rtypes, _as_list(dy))):
            if not t.is_float:
                assert tangent is None
                continue
            if any(isinstance(v, mpmath.mpc) for v in (lo[k], mid[k], hi[k])):
                continue
            left, right = (mid[k] - lo[k]) / H, (hi[k] - mid[k]) / H
            central = (hi[k] - lo[k]) / (2 * H)
            if abs(left - right) > mpf("1e-12") * max(abs(left), abs(right), 1):
                STATS["skipped"] += 1  # not differentiable here: any one-sided value would do
                continue
            ref = float(central)
            tol = RTOL * max(abs(ref), 1e-6)
            assert abs(tangent - ref) <= tol, \
                f"{name}{args} along {dirs}: output {k}: lldiff {tangent!r}, mpmath FD {ref!r}"
            # reverse mode against the same reference: <J^T e_k, dirs> = (J dirs)_k
            rev = _reverse_directional(d, args, types_, dirs, rtypes, k)
            assert abs(rev - ref) <= tol, \
                f"{name}{args} along {dirs}: output {k}: lldiff reverse {rev!r}, mpmath FD {ref!r}"
            checked += 1
    STATS["checked"] += checked


def test_most_points_were_checked():
    """Guards the differential test against skipping everything (runs after it, in order)."""
    if STATS["checked"] == 0:
        pytest.skip("the corpus jvp test did not run in this session")
    print(f"corpus jvp: {STATS['checked']} outputs checked, {STATS['skipped']} skipped")
    assert STATS["checked"] >= 3 * STATS["skipped"], STATS
