"""lldiff.hessian: forward over reverse (the jvp pass run on the vjp pass's reverse sweep,
tape included), against sympy's exact second derivatives and scipy's Bessel identities."""

import math

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
