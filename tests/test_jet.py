"""lldiff.jet (Taylor mode, passes/taylor.py): series of order 1-8 through every op with a
Taylor rule, loops and branches, against the Taylor coefficients of the same function written
in sympy (evaluated by mpmath at 60 digits) along the same curve, and against repeated forward
mode (jvp, the Hessian)."""

import math

import pytest
import sympy as sp

import lldiff
from test_hessian import besselj  # the seed's series (a data-dependent while loop)

T = sp.Symbol("t")


def _curve(x0, x1=1.0, x2=0.5):
    """x(t) = x0 + x1 t + x2 t^2 / 2: derivative coefficients [x1, x2, 0, ...]."""
    return sp.nsimplify(x0) + sp.nsimplify(x1) * T + sp.nsimplify(x2) * T ** 2 / 2


def _want(expr_of, xs, K):
    """The derivatives d^k/dt^k f(x(t)) at t = 0, k = 1..K, of the sympy expression: its
    Taylor coefficients by mpmath at 60 digits (symbolic differentiation to order 8 of these
    expressions takes minutes)."""
    import mpmath
    expr = expr_of(*xs)
    fn = sp.lambdify(T, expr, "mpmath")
    with mpmath.workdps(60):
        coeffs = mpmath.taylor(fn, 0, K)
        return [float(coeffs[k] * mpmath.factorial(k)) for k in range(1, K + 1)]


def _series(K, x1=1.0, x2=0.5):
    return [x1, x2] + [0.0] * (K - 2) if K >= 2 else [x1]


def exp_sin(x):
    return math.exp(math.sin(x)) / (1.0 + x * x)


def log_sqrt(x):
    return math.log(1.0 + math.sqrt(x)) * math.cosh(x)


def trig_mix(x):
    return math.atan(x) * math.tanh(x) - math.asinh(x) / math.cosh(x)


def pow_mix(x):
    return x ** 2.5 + (1.0 + x) ** x - x ** 4 / (2.0 + x)


def hypot_atan2(x):
    return math.hypot(x, 2.0 * x + 1.0) + math.atan2(x, 1.0 - x)


SYMS = {
    exp_sin: lambda x: sp.exp(sp.sin(x)) / (1 + x * x),
    log_sqrt: lambda x: sp.log(1 + sp.sqrt(x)) * sp.cosh(x),
    trig_mix: lambda x: sp.atan(x) * sp.tanh(x) - sp.asinh(x) / sp.cosh(x),
    pow_mix: lambda x: x ** sp.Rational(5, 2) + (1 + x) ** x - x ** 4 / (2 + x),
    hypot_atan2: lambda x: sp.sqrt(x ** 2 + (2 * x + 1) ** 2) + sp.atan2(x, 1 - x),
}


def _close(got, want, rel=1e-9):
    scale = max(1.0, max(abs(w) for w in want))
    return all(abs(g - w) <= rel * max(abs(w), 1e-3 * scale) for g, w in zip(got, want))


@pytest.mark.parametrize("f", list(SYMS), ids=lambda f: f.__name__)
@pytest.mark.parametrize("K", [1, 2, 5, 8])
def test_jets_of_compositions_match_sympy(f, K):
    x0 = 0.7
    want = _want(lambda x: SYMS[f](x), [_curve(x0)], K)
    y0, ys = lldiff.jet(f, (x0,), (_series(K),))
    assert y0 == pytest.approx(f(x0), rel=1e-15)
    assert len(ys) == K and _close(ys, want), (ys, want)


def ops_through_one_function(x):
    return (math.exp(x) + math.log(x) + math.sqrt(x) + math.sin(x) + math.cos(x) + math.tan(x)
            + math.tanh(x) + math.sinh(x) + math.cosh(x) + math.asin(x / 2.0)
            + math.acos(x / 2.0) + math.atan(x) + math.asinh(x) + math.acosh(x + 1.0)
            + math.atanh(x / 2.0) + math.erf(x) + math.erfc(x) + math.expm1(x)
            + math.log1p(x) + math.log2(x) + math.log10(x) + 2.0 ** x + x ** 2.5 + x ** 3
            + x ** -2 + abs(x - 2.0) * x + x ** x + math.cbrt(x) + math.fmod(5.0 * x, 1.3))


def ops_sym(x):
    return (sp.exp(x) + sp.log(x) + sp.sqrt(x) + sp.sin(x) + sp.cos(x) + sp.tan(x)
            + sp.tanh(x) + sp.sinh(x) + sp.cosh(x) + sp.asin(x / 2) + sp.acos(x / 2)
            + sp.atan(x) + sp.asinh(x) + sp.acosh(x + 1) + sp.atanh(x / 2) + sp.erf(x)
            + sp.erfc(x) + (sp.exp(x) - 1) + sp.log(1 + x) + sp.log(x) / sp.log(2)
            + sp.log(x) / sp.log(10) + 2 ** x + x ** sp.Rational(5, 2) + x ** 3 + x ** -2
            + (2 - x) * x + x ** x + sp.cbrt(x) + 5 * x)  # fmod: locally 5x - const


@pytest.mark.parametrize("K", [1, 3, 8])
def test_every_unary_rule_in_one_function(K):
    x0 = 0.9
    want = _want(ops_sym, [_curve(x0)], K)
    _, ys = lldiff.jet(ops_through_one_function, (x0,), (_series(K),))
    assert _close(ys, want, rel=1e-8), (ys, want)


def branchy(x, n):
    s = 0.0
    for k in range(n):
        if k % 3 == 0:
            s += math.sin(x * k) / (k + 1)
        else:
            s = s * 0.5 + x ** k
    return s


@pytest.mark.parametrize("K", [1, 4, 8])
def test_jets_through_a_while_loop_and_branches(K):
    z0 = 3.7
    want = _want(lambda z: sp.besselj(2, z), [_curve(z0)], K)
    y0, ys = lldiff.jet(besselj, (2.0, z0), (None, _series(K)))
    assert _close(ys, want, rel=1e-9), (ys, want)

    def branchy_sym(x):
        s = 0
        for k in range(7):
            s = s + sp.sin(x * k) / (k + 1) if k % 3 == 0 else s / 2 + x ** k
        return s
    want = _want(branchy_sym, [_curve(0.8)], K)
    _, ys = lldiff.jet(branchy, (0.8, 7), (_series(K), None))
    assert _close(ys, want), (ys, want)


def two_args(x, y):
    return x * math.exp(y) / (1.0 + x * y) + math.atan2(y, x)


def test_several_arguments_and_repeated_forward_mode():
    K = 6
    want = _want(lambda x, y: x * sp.exp(y) / (1 + x * y) + sp.atan2(y, x),
                 [_curve(0.6, 1.0, 0.5), _curve(1.1, -0.5, 2.0)], K)
    _, ys = lldiff.jet(two_args, (0.6, 1.1), (_series(K, 1.0, 0.5), _series(K, -0.5, 2.0)))
    assert _close(ys, want), (ys, want)
    # order 1 is the jvp; order 2 along a straight line is the Hessian's quadratic form
    _, ys = lldiff.jet(besselj, (2.0, 3.7), (None, [1.0, 0.0]))
    assert ys[0] == pytest.approx(lldiff.jvp(besselj, (2.0, 3.7), (None, 1.0))[1], rel=1e-14)
    assert ys[1] == pytest.approx(lldiff.hessian(besselj, argnums=1)(2.0, 3.7), rel=1e-12)


def uses_lgamma(x):
    return math.lgamma(x)


def test_errors():
    with pytest.raises(NotImplementedError, match="lldiff.lgamma"):
        lldiff.jet(uses_lgamma, (2.5,), ([1.0, 0.0],))
    with pytest.raises(ValueError, match="same length"):
        lldiff.jet(two_args, (0.6, 1.1), ([1.0], [1.0, 0.0]))
    with pytest.raises(ValueError, match="1..16"):
        lldiff.jet(exp_sin, (0.6,), ([1.0] * 17,))
    with pytest.raises(TypeError, match="only float arguments"):
        lldiff.jet(branchy, (0.8, 7), (None, [1.0]))


# --- the corpus: every smooth point of every function with float arguments --------------------

def _corpus_cases():
    import os
    import sys
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import corpus
    return [pytest.param(c, id=c.fn.__name__) for c in corpus.CASES
            if any(isinstance(a, float) for args in c.inputs for a in args)]


CORPUS_STATS = {"checked": 0, "skipped": 0}
# Points where the program's Taylor series is not the function's, with the reason.
JET_LIMITS = {
    ("call_chain", (0.0,)): "clamp(c x^2, 0, 100) at x = 0 is a tie of max: the program's "
                            "series is that of the branch Python returns (the constant 0), "
                            "the function's that of c x^2 (a second-order difference)",
    ("sinc", (1e-300,)): "sin(x)/x at x = 1e-300: the quotient recurrence divides by x and "
                         "cancels catastrophically next to the removable singularity",
    ("logistic_map", (3.7, 0.5, 100)): "chaotic: 100 steps of the logistic map at r = 3.7 "
                                       "amplify rounding ~1e15-fold, so the float trajectory "
                                       "is not the exact one the reference follows",
}



@pytest.fixture(scope="module")
def corpus_namespaces():
    import types as _types

    import corpus
    from test_jvp_corpus import FUNCS as CFUNCS
    from test_jvp_corpus import _mp_namespace
    ns = dict(vars(corpus))
    for name, fn in CFUNCS.items():
        clone = _types.FunctionType(fn.__code__, ns, fn.__name__, fn.__defaults__,
                                    fn.__closure__)
        ns[name] = lldiff.jit(clone, opt=2)
    return ns, _mp_namespace()


@pytest.mark.parametrize("case", _corpus_cases())
def test_corpus_jets_match_mpmath_taylor_coefficients(case, corpus_namespaces):
    """Orders 1-8 along a random direction at each input where the function is smooth (the
    mpmath twin takes the same path at x and x +- 1e-20): lldiff's coefficients against
    mpmath.taylor of the mpmath twin (the source re-executed with mpmath numbers)."""
    import random

    import mpmath
    import numpy as np
    from test_jvp_corpus import (ORACLE_DOES_NOT_APPLY, _as_list, _finite_float_result,
                                 _Timeout, _traced, _with_timeout)
    jit_ns, mp_ns = corpus_namespaces
    name = case.fn.__name__
    d, g = jit_ns[name], mp_ns[name]
    rng = random.Random(name + "jet")
    for n_in, args in enumerate(case.inputs):
        K = (1, 4, 8)[n_in % 3]
        try:
            with np.errstate(all="ignore"):
                py = case.fn(*args)
        except Exception:  # noqa: BLE001 - inputs where Python raises are not differentiated
            continue
        if not _finite_float_result(py) or not all(
                math.isfinite(a) for a in args if isinstance(a, float)):
            continue
        dirs = [rng.uniform(-1, 1) if isinstance(a, float) else None for a in args]
        if all(v is None for v in dirs):
            continue
        if (name, args) in ORACLE_DOES_NOT_APPLY or (name, args) in JET_LIMITS:
            CORPUS_STATS["skipped"] += 1
            continue
        try:
            y0, ys = lldiff.jet(d, args, [None if v is None else [v] + [0.0] * (K - 1)
                                          for v in dirs])
        except NotImplementedError as e:
            assert "lgamma" in str(e) or "tgamma" in str(e), e
            CORPUS_STATS["skipped"] += 1
            continue
        big = max([abs(a) for a in args if isinstance(a, float)] + [1.0])
        dps = 60 + 2 * int(math.log10(big))

        def at(t):
            xs = [mpmath.mpf(a) + t * mpmath.mpf(v) if v is not None else a
                  for a, v in zip(args, dirs)]
            return _traced(g, *xs)

        try:
            with mpmath.workdps(dps):
                paths = [_with_timeout(5, at, mpmath.mpf(t))[1]
                         for t in ("-1e-20", "0", "1e-20")]
                if not paths[0] == paths[1] == paths[2]:
                    CORPUS_STATS["skipped"] += 1  # a branch boundary
                    continue
                delta = mpmath.mpf("1e-30")
                lo, mid, hi = (_as_list(at(t)[0]) for t in (-delta, mpmath.mpf(0), delta))
                kinked = False
                for u, v, w in zip(lo, mid, hi):
                    if isinstance(v, mpmath.mpf):
                        left, right = (v - u) / delta, (w - v) / delta
                        # a jump (%, //, floor) or a kink (abs, min, max) at the point
                        kinked |= abs(left - right) > mpmath.mpf("1e-12") * max(
                            abs(left), abs(right), 1)
                if kinked:
                    CORPUS_STATS["skipped"] += 1
                    continue
                outs = _as_list(py)
                refs = []
                for k in range(len(outs)):
                    if not isinstance(outs[k], float):
                        refs.append(None)
                        continue
                    # at two precisions (mpmath's step shrinks with the precision): a jump
                    # (floor, //, %) within reach of the differences makes them disagree,
                    # and the point is skipped
                    fk = (lambda t, k=k: _as_list(at(t)[0])[k])
                    cs = []
                    for extra in (0, 60):
                        with mpmath.workdps(dps + extra):
                            cs.append(_with_timeout(20, mpmath.taylor, fk, 0, K))
                    ref = [float(cs[0][j] * mpmath.factorial(j)) for j in range(1, K + 1)]
                    alt = [float(cs[1][j] * mpmath.factorial(j)) for j in range(1, K + 1)]
                    scale = max([abs(r) for r in ref] + [1.0])
                    if any(abs(r - q) > 1e-9 * scale for r, q in zip(ref, alt)):
                        raise ValueError("not smooth at the scale of the differences")
                    refs.append(ref)
        except (_Timeout, ZeroDivisionError, ValueError, OverflowError, TypeError):
            CORPUS_STATS["skipped"] += 1
            continue
        got = [ys] if not isinstance(ys, tuple) else list(ys)
        for k, ref in enumerate(refs):
            if ref is None or any(isinstance(r, complex) for r in ref):
                continue
            if any(not math.isfinite(r) for r in ref):
                continue
            scale = max([abs(r) for r in ref] + [1.0])
            for j, (a, b) in enumerate(zip(got[k], ref)):
                # each order's recurrence adds rounding: 1e-7 at order 1, doubling per order
                tol = 1e-7 * 2 ** j
                assert abs(a - b) <= tol * max(abs(b), 1e-4 * scale), \
                    f"{name}{args} along {dirs}: output {k}, order {j + 1}: {a} vs mpmath {b}"
            CORPUS_STATS["checked"] += 1


def test_most_corpus_points_were_checked():
    """Guards the corpus test against skipping everything (runs after it, in order)."""
    if CORPUS_STATS["checked"] + CORPUS_STATS["skipped"] == 0:
        pytest.skip("the corpus jet test did not run in this session")
    print(f"corpus jets: {CORPUS_STATS}")
    assert CORPUS_STATS["checked"] >= 3 * CORPUS_STATS["skipped"], CORPUS_STATS
