"""lldiff.hessian: forward over reverse (the jvp pass run on the vjp pass's reverse sweep,
tape included), against sympy's exact second derivatives and scipy's Bessel identities."""

import math

import numpy as np
import pytest
import sympy as sp
from scipy.special import jv

import lldiff


def besselj(v, z):
    term = (z / 2.0) ** v / math.gamma(v + 1.0)
    s = term
    k = 0
    while abs(term) > 1e-16 * abs(s):
        k += 1
        term = -term * (z * z / 4.0) / (k * (k + v))
        s += term
    return s


def rosen2(x, y):
    return (1.0 - x) ** 2 + 100.0 * (y - x * x) ** 2


def trig(x, y):
    return x * x * y + math.sin(x * y)


def expo(x, y, z):
    return math.exp(x * y) / (1.0 + z * z) + math.log(1.0 + x * x) * z


def with_if(x, y):
    if x * y > 1.0:
        return x ** 3 * y
    return x * y * y + math.cos(x)


def loop_poly(x, n):
    s = 0.0
    p = 1.0
    for k in range(n):
        s += p / (k + 1)
        p *= x
    return s


def loop_if(x, y):
    s = 0.0
    for k in range(6):
        if k % 2 == 0:
            s += math.sin(x * k) * y
        else:
            s += math.exp(-x * y / (k + 1))
    return s


def while_newton(a, x0):
    x = x0
    for _ in range(3):  # a few Newton steps toward sqrt(a): a smooth function of (a, x0)
        x = 0.5 * (x + a / x)
    return x * x + a * x


def hyp(x, y):
    return math.tanh(x) * math.sinh(y) + math.atan(x * y)


def sqrt_pow(x, y):
    return math.sqrt(x * x + y * y) + x ** 2.5 * y ** 1.5


def mixed_int(x, n, y):
    return x ** n * y + n * y * y


def erf_gamma(x, y):
    return math.erf(x * y) + math.lgamma(1.5 + x)


def minmax(x, y):
    return max(x * x, y) * min(x, y * y) + abs(x - y) * x


def chain(x0, theta):
    x = x0
    for _ in range(50):
        x = x + 0.01 * math.sin(x) * theta
    return x


def logistic(x, y):
    return 1.0 / (1.0 + math.exp(-(x * 0.3 + y * 0.7))) * x


X, Y, Z, N = sp.symbols("x y z n")
SYM = {
    rosen2: (1 - X) ** 2 + 100 * (Y - X * X) ** 2,
    trig: X * X * Y + sp.sin(X * Y),
    expo: sp.exp(X * Y) / (1 + Z * Z) + sp.log(1 + X * X) * Z,
    hyp: sp.tanh(X) * sp.sinh(Y) + sp.atan(X * Y),
    sqrt_pow: sp.sqrt(X * X + Y * Y) + X ** sp.Rational(5, 2) * Y ** sp.Rational(3, 2),
    erf_gamma: sp.erf(X * Y) + sp.loggamma(sp.Rational(3, 2) + X),
    logistic: 1 / (1 + sp.exp(-(X * sp.Rational(3, 10) + Y * sp.Rational(7, 10)))) * X,
}
POINTS = {rosen2: (0.7, 1.3), trig: (0.7, 1.3), expo: (0.4, -0.6, 1.2), hyp: (0.3, 0.8),
          sqrt_pow: (1.2, 0.7), erf_gamma: (0.6, 0.9), logistic: (0.4, -1.1)}


def _sym_hessian(expr, syms, point):
    subs = dict(zip(syms, point))
    return [[float(sp.diff(expr, a, b).evalf(30, subs=subs)) for b in syms] for a in syms]


def _close(a, b, rel=1e-10, abs_=1e-12):
    return abs(a - b) <= rel * abs(b) + abs_


@pytest.mark.parametrize("f", list(SYM), ids=lambda f: f.__name__)
def test_hessian_matches_sympy(f):
    point = POINTS[f]
    syms = (X, Y, Z)[:len(point)]
    want = _sym_hessian(SYM[f], syms, point)
    got = lldiff.hessian(f, argnums=tuple(range(len(point))))(*point)
    for i in range(len(point)):
        for j in range(len(point)):
            assert _close(got[i][j], want[i][j]), (f.__name__, i, j, got, want)
            assert got[i][j] == pytest.approx(got[j][i], rel=1e-12, abs=1e-14)  # symmetry


@pytest.mark.parametrize("z", [0.1, 0.5, 2.0, 3.7, 7.5, 12.0])
def test_bessel_second_derivative_through_the_while_loop(z):
    h = lldiff.hessian(besselj, argnums=1)
    # J_v'' = (J_{v-2} - 2 J_v + J_{v+2}) / 4
    want = (jv(0.0, z) - 2 * jv(2.0, z) + jv(4.0, z)) / 4
    assert _close(h(2.0, z), want, rel=1e-10, abs_=1e-13)


def _fd_hessian(f, point, i, j, h=1e-4):
    """A fourth-order central difference of the reverse-mode gradient (itself checked against
    50-digit mpmath differences in test_jvp_corpus.py): d2f/dx_i dx_j to ~1e-9 relative."""
    g = lldiff.grad(f, argnums=i)

    def gi(t):
        q = list(point)
        q[j] = q[j] + t
        return g(*q)
    return (-gi(2 * h) + 8 * gi(h) - 8 * gi(-h) + gi(-2 * h)) / (12 * h)


@pytest.mark.parametrize("f,point", [(with_if, (0.6, 1.1)), (with_if, (1.3, 1.1)),
                                     (loop_poly, (0.7, 7)), (loop_if, (0.4, 1.7)),
                                     (while_newton, (2.0, 1.5)), (chain, (0.3, 2.0)),
                                     (minmax, (0.9, 0.4)), (mixed_int, (1.3, 3, 0.8))],
                         ids=lambda p: getattr(p, "__name__", None))
def test_hessian_of_loops_and_branches_matches_differences_of_the_gradient(f, point):
    nums = tuple(i for i, p in enumerate(point) if isinstance(p, float))
    H = lldiff.hessian(f, argnums=nums)(*point)
    for a, i in enumerate(nums):
        for b, j in enumerate(nums):
            want = _fd_hessian(f, point, i, j)
            assert _close(H[a][b], want, rel=1e-7, abs_=1e-8), (a, b, H, want)


def test_hessian_single_argnum_and_repeated_calls():
    h = lldiff.hessian(trig)
    x, y = 0.7, 1.3
    want = 2 * y - y * y * math.sin(x * y)
    assert _close(h(x, y), want)
    assert h(x, y) == h(x, y)  # the planned second call: the same native result
    with pytest.raises(TypeError, match="must return one float"):
        lldiff.hessian(lambda_pair)(1.0)
    with pytest.raises(TypeError, match="only float arguments"):
        lldiff.hessian(mixed_int, argnums=1)(1.3, 3, 0.8)


def lambda_pair(x):
    return x, x


# --- arrays: Hessian blocks, hvp -------------------------------------------------------------

def rosen(x):
    s = 0.0
    for i in range(x.shape[0] - 1):
        s += 100.0 * (x[i + 1] - x[i] * x[i]) ** 2 + (1.0 - x[i]) ** 2
    return s


def array_objective(x, a):
    s = 0.0
    for i in range(x.shape[0]):
        s += a * x[i] ** 3 + a * a * x[i] + math.sin(x[i] * x[(i + 1) % x.shape[0]])
    return s


def _sym_array(expr_of, n, point):
    xs = sp.symbols(f"x0:{n}")
    expr = expr_of(xs)
    subs = dict(zip(xs, point))
    return np.array([[float(sp.diff(expr, a, b).evalf(30, subs=subs)) for b in xs] for a in xs])


@pytest.mark.parametrize("n", [2, 3, 6, 17, 40])
def test_rosenbrock_in_n_dimensions(n):
    rng = np.random.default_rng(n)
    x = rng.normal(size=n)
    H = lldiff.hessian(rosen)(x)
    if n <= 6:
        want = _sym_array(lambda xs: sum(100 * (xs[i + 1] - xs[i] ** 2) ** 2 + (1 - xs[i]) ** 2
                                         for i in range(n - 1)), n, x)
    else:  # the closed form (tridiagonal)
        want = np.zeros((n, n))
        for i in range(n - 1):
            want[i, i] += 1200 * x[i] ** 2 - 400 * x[i + 1] + 2
            want[i, i + 1] -= 400 * x[i]
            want[i + 1, i] -= 400 * x[i]
            want[i + 1, i + 1] += 200
    assert H.shape == (n, n)
    np.testing.assert_allclose(H, want, rtol=1e-12, atol=1e-10)
    np.testing.assert_array_equal(H, H.T)
    v = rng.normal(size=n)
    np.testing.assert_allclose(lldiff.hvp(rosen, (x,), (v,)), H @ v, rtol=1e-12, atol=1e-9)


def test_array_and_scalar_blocks_and_hvp():
    x, a = np.array([0.5, -1.0, 2.0, 0.3]), 1.5
    n = len(x)
    xs = sp.symbols(f"x0:{n}")
    A = sp.Symbol("a")
    expr = sum(A * xs[i] ** 3 + A * A * xs[i] + sp.sin(xs[i] * xs[(i + 1) % n])
               for i in range(n))
    syms = list(xs) + [A]
    subs = dict(zip(syms, list(x) + [a]))
    full = np.array([[float(sp.diff(expr, p, q).evalf(30, subs=subs)) for q in syms]
                     for p in syms])
    (hxx, hxa), (hax, haa) = lldiff.hessian(array_objective, argnums=(0, 1))(x, a)
    assert hxx.shape == (n, n) and hxa.shape == (n,) and hax.shape == (n,)
    np.testing.assert_allclose(hxx, full[:n, :n], rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(hxa, full[:n, n], rtol=1e-12)
    np.testing.assert_allclose(hax, full[n, :n], rtol=1e-12)
    assert haa == pytest.approx(full[n, n], rel=1e-12)
    v, w = np.array([1.0, -0.5, 0.25, 2.0]), 0.5
    hv_x, hv_a = lldiff.hvp(array_objective, (x, a), (v, w))
    want = full @ np.append(v, w)
    np.testing.assert_allclose(hv_x, want[:n], rtol=1e-12, atol=1e-13)
    assert hv_a == pytest.approx(want[n], rel=1e-12)
    assert lldiff.hvp(array_objective, (x, a), (None, 1.0)) == pytest.approx(full[n, n])
    with pytest.raises(ValueError, match="every tangent is None"):
        lldiff.hvp(array_objective, (x, a), (None, None))
    with pytest.raises(ValueError, match="has shape"):
        lldiff.hvp(array_objective, (x, a), (np.ones(3), None))


def test_hvp_of_the_bessel_series_equals_the_hessian_times_v():
    z, v = 3.7, 0.25
    h = lldiff.hessian(besselj, argnums=1)(2.0, z)
    assert lldiff.hvp(besselj, (2.0, z), (None, v)) == pytest.approx(h * v, rel=1e-14)


@pytest.mark.parametrize("f,point,k", [(besselj, (2.0, 3.7), 1), (trig, (0.7, 1.3), 0),
                                       (loop_if, (0.4, 1.7), 1), (with_if, (1.3, 1.1), 0),
                                       (chain, (0.3, 2.0), 1), (loop_poly, (0.7, 7), 0)],
                         ids=lambda p: getattr(p, "__name__", None))
def test_reverse_over_forward_agrees(f, point, k):
    """The other composition (the vjp pass on the jvp pass's output, kind "hvp-rof") gives
    the same second derivative: both orders are plain IR -> IR passes."""
    from lldiff.ad import _dispatcher
    d = _dispatcher(f, "test")
    types = tuple(d._arg_type("a", p) for p in point)
    mask = [i == k for i in range(len(point))]
    fo = d._derived(types, "hvp", mask, 1, seeded=(True,)).entry(*point, 1.0)
    ro = d._derived(types, "hvp-rof", mask, 1, seeded=(True,)).entry(*point, 1.0)
    want = lldiff.hessian(f, argnums=k)(*point)
    assert fo[-1] == pytest.approx(want, rel=1e-15, abs=1e-300)
    assert ro[-1] == pytest.approx(want, rel=1e-12, abs=1e-14)


# --- compositions of the API: jvp / grad / jacfwd of a gradient --------------------------------

def test_compositions_of_grad_equal_the_hessian():
    x, y = 0.7, 1.3
    H = lldiff.hessian(trig, argnums=(0, 1))(x, y)
    assert lldiff.grad(lldiff.grad(trig, 0), argnums=(0, 1))(x, y) == H[0]
    assert lldiff.grad(lldiff.grad(trig, 1), argnums=1)(x, y) == H[1][1]
    assert lldiff.jacfwd(lldiff.grad(trig, argnums=(0, 1)), argnums=(0, 1))(x, y) == H
    assert lldiff.jacrev(lldiff.grad(trig, argnums=(0, 1)), argnums=(0, 1))(x, y) == H
    # jacrev of a float-valued function is its gradient: jacfwd(jacrev(f)) as in JAX
    assert lldiff.jacfwd(lldiff.jacrev(trig, argnums=(0, 1)), argnums=(0, 1))(x, y) == H
    assert lldiff.jacrev(lldiff.jacrev(trig, argnums=(0, 1)), argnums=(0, 1))(x, y) == H
    g, dg = lldiff.jvp(lldiff.grad(trig, argnums=(0, 1)), (x, y), (1.0, 0.5))
    assert g == lldiff.grad(trig, argnums=(0, 1))(x, y)
    assert dg == pytest.approx((H[0][0] + 0.5 * H[0][1], H[1][0] + 0.5 * H[1][1]), rel=1e-15)
    (v, g0), (dv, dg0) = lldiff.jvp(lldiff.value_and_grad(trig), (x, y), (1.0, None))
    assert v == trig(x, y) or v == pytest.approx(trig(x, y), rel=1e-15)
    assert (dv, dg0) == (g0, H[0][0])


def test_jvp_of_grad_through_the_bessel_loop_and_arrays():
    z = 3.7
    g, dg = lldiff.jvp(lldiff.grad(besselj, argnums=1), (2.0, z), (None, 1.0))
    assert dg == pytest.approx((jv(0.0, z) - 2 * jv(2.0, z) + jv(4.0, z)) / 4, rel=1e-10)
    x = np.array([0.5, 1.2, -0.3, 0.8])
    v = np.array([0.1, -2.0, 0.3, 1.0])
    gx, hv = lldiff.jvp(lldiff.grad(rosen), (x,), (v,))
    np.testing.assert_allclose(hv, lldiff.hessian(rosen)(x) @ v, rtol=1e-13)
    np.testing.assert_allclose(gx, lldiff.grad(rosen)(x), rtol=1e-15)


def test_compositions_refuse_what_they_cannot_do():
    with pytest.raises(TypeError, match="one argument"):
        lldiff.grad(lldiff.grad(trig, argnums=(0, 1)))(0.7, 1.3)
    with pytest.raises(NotImplementedError, match="has_aux"):
        lldiff.jvp(lldiff.grad(lambda_pair_aux, has_aux=True), (1.0,), (1.0,))


def lambda_pair_aux(x):
    return x * x, x
