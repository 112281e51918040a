"""User derivative rules (`@lldiff.custom_jvp` / `@lldiff.custom_vjp`): both modes, from
Python and from other compiled functions, under composition (Hessians), and the errors.
Oracles: closed forms and scipy's Bessel functions."""

import math

import numpy as np
import pytest
from scipy.special import jv

import lldiff


@lldiff.custom_jvp
def bsqrt(a):
    """sqrt by bisection: plain AD gives 0 (the result is piecewise constant in a)."""
    lo = 0.0
    hi = float(int(a) + 1)
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        if mid * mid > a:
            hi = mid
        else:
            lo = mid
    return 0.5 * (lo + hi)


@bsqrt.defjvp
def bsqrt_jvp(a, da):
    y = bsqrt(a)
    return y, da / (2.0 * y)


@lldiff.custom_vjp
def besselj(v, z):
    term = (z / 2.0) ** v / math.gamma(v + 1.0)
    s = term
    k = 0
    while abs(term) > 1e-16 * abs(s):
        k += 1
        term = -term * (z * z / 4.0) / (k * (k + v))
        s += term
    return s


@besselj.defvjp
def besselj_vjp(v, z, y, ybar):
    # the seed's rule J_v' = (J_{v-1} - J_{v+1}) / 2; no derivative in v here (0)
    return 0.0, ybar * 0.5 * (besselj(v - 1.0, z) - besselj(v + 1.0, z))


@lldiff.jit
def uses_sqrt(a, b):
    return bsqrt(a * b) * b


@lldiff.jit
def bessel_sum(z):
    s = 0.0
    for i in range(5):
        s += besselj(2.0, z + 0.5 * i) * (i + 1)
    return s


def test_bisection_rule_replaces_plain_ad():
    assert lldiff.grad(bsqrt.py_func)(2.0) == 0.0  # what plain AD of the body gives
    for a in (0.3, 2.0, 7.5):
        want = 1 / (2 * math.sqrt(a))
        assert lldiff.grad(bsqrt)(a) == pytest.approx(want, rel=1e-14)
        y, dy = lldiff.jvp(bsqrt, (a,), (1.0,))
        assert y == pytest.approx(math.sqrt(a), rel=1e-15) and dy == pytest.approx(want)
        assert lldiff.jacfwd(bsqrt)(a) == pytest.approx(want, rel=1e-14)
    z = np.array([0.5, 2.0, 9.0])
    np.testing.assert_allclose(lldiff.vectorize(lldiff.grad(bsqrt))(z), 1 / (2 * np.sqrt(z)),
                               rtol=1e-14)


def test_rules_apply_when_called_from_compiled_functions():
    a, b = 2.0, 3.0
    r = math.sqrt(a * b)
    ga, gb = lldiff.grad(uses_sqrt, argnums=(0, 1))(a, b)
    assert ga == pytest.approx(b * b / (2 * r), rel=1e-14)
    assert gb == pytest.approx(r + a * b / (2 * r), rel=1e-14)
    y, dy = lldiff.jvp(uses_sqrt, (a, b), (1.0, 0.5))
    assert dy == pytest.approx(ga + 0.5 * gb, rel=1e-14)
    zs = [3.7 + 0.5 * i for i in range(5)]
    want = sum((i + 1) * 0.5 * (jv(1, z) - jv(3, z)) for i, z in enumerate(zs))
    assert lldiff.grad(bessel_sum)(3.7) == pytest.approx(want, rel=1e-12)
    assert lldiff.jvp(bessel_sum, (3.7,), (1.0,))[1] == pytest.approx(want, rel=1e-12)


def test_vjp_rule_in_both_modes_and_its_hessian():
    for z in (0.5, 3.7, 9.0):
        d = 0.5 * (jv(1, z) - jv(3, z))
        assert lldiff.grad(besselj, argnums=1)(2.0, z) == pytest.approx(d, rel=1e-12)
        assert lldiff.grad(besselj, argnums=0)(2.0, z) == 0.0  # the rule's choice
        assert lldiff.jvp(besselj, (2.0, z), (None, 1.0))[1] == pytest.approx(d, rel=1e-12)
        # forward over reverse differentiates the rule (JAX #16049: a custom_vjp function
        # still has a Hessian); the rule calls besselj, whose rule applies again
        h = (jv(0, z) - 2 * jv(2, z) + jv(4, z)) / 4
        assert lldiff.hessian(besselj, argnums=1)(2.0, z) == pytest.approx(h, rel=1e-10,
                                                                            abs=1e-14)


def test_jvp_rule_under_composition():
    for a in (0.3, 2.0, 7.5):
        assert lldiff.hessian(bsqrt)(a) == pytest.approx(-1 / (4 * a ** 1.5), rel=1e-13)
        g, dg = lldiff.jvp(lldiff.grad(bsqrt), (a,), (1.0,))
        assert dg == pytest.approx(-1 / (4 * a ** 1.5), rel=1e-13)


def test_the_rule_hides_the_loop_from_ad():
    """No tape for the series' while loop: the gradient IR calls the rule instead (JAX
    #18311: a custom rule must keep AD out of the function's loop)."""
    from lldiff.ad import _dispatcher
    d = _dispatcher(besselj, "test")
    types = (d._arg_type("v", 2.0), d._arg_type("z", 1.0))
    spec = d._derived(types, "grad", [True, True], seeded=(True,))
    assert "ad.push" not in "".join(spec.before_tape)
    derived = [f for f in spec.module if ".ruled." in f.name]  # the vjp and the grad
    assert len(derived) == 2
    ops = [op for f in derived for op in f.walk()]
    assert not any(op.name.startswith("ad.") for op in ops)
    assert any(op.name == "func.call" and op.attrs["callee"].startswith("besselj_vjp.")
               for op in ops)


def test_a_function_defined_before_its_rule_gets_the_rule():
    @lldiff.custom_jvp
    def cube(x):
        return x * x * x

    assert lldiff.grad(cube)(2.0) == 12.0  # no rule yet: plain AD

    @cube.defjvp
    def cube_jvp(x, dx):
        return x * x * x, 100.0 * dx  # a deliberately different rule

    assert lldiff.grad(cube)(2.0) == 100.0


def test_rule_errors_are_compile_errors():
    @lldiff.custom_jvp
    def f(x):
        return x * 2.0

    @f.defjvp
    def f_bad(x, dx):
        return x * 2.0  # must return (y, dy)

    with pytest.raises(lldiff.CompileError, match=r"must return \(y, dy\)"):
        lldiff.grad(f)(1.0)

    @lldiff.custom_vjp
    def g(x):
        return x, x

    @g.defvjp
    def g_rule(x, y, ybar):
        return ybar

    with pytest.raises(lldiff.CompileError, match="must return one float"):
        lldiff.jvp(g, (1.0,), (1.0,))
    with pytest.raises(TypeError, match="defjvp expects a Python function"):
        f.defjvp(3)
