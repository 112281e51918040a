"""A corpus of plain-Python scalar functions for lldiff's differential tests.

Every function here is ordinary Python (no decorators) written in lldiff's supported subset
(see the contract): scalars only (int, float, bool), 1-3 arguments, tuple returns allowed, no
recursion, lists, strings, keyword arguments or default arguments. `tests/test_corpus.py` runs
each function on its inputs in plain Python, in lldiff's IR interpreter and compiled at two opt
levels, and checks that they agree.

Corpus functions call one another only through this module's globals, so the test can rebind
those names to jitted dispatchers (it clones each function with a copied globals dict).

Inputs are chosen so that every call is fast (< 1 ms in plain Python), every loop is bounded
for every input (nan and inf included) and no 64-bit integer overflows. Some inputs make Python
raise ZeroDivisionError (lldiff must raise it too); some make Python's math module raise
ValueError/OverflowError or make `**` return a complex (lldiff follows IEEE there: the test
compares the compiled code with lldiff's interpreter only).
"""

import math
from collections import namedtuple

import numpy as np

Case = namedtuple("Case", "fn inputs")

# --- module-level numeric constants (lldiff freezes them at compile time) -----------------
G = 9.81
TOL = 1e-12
MAX_ITER = 200
N_STEPS = 64
HALF = 0.5
SCALE = 3
ENABLED = True
NEG_STEP = -2
INF = math.inf
NAN = math.nan
BIG = 2 ** 53 + 1


# === assignment, augmented assignment, tuple unpacking ===================================

def assign_chain(x, y):
    a = x + y
    b = a * 2
    c = b - x
    d = c
    d = d - y
    return d


def aug_all_int(a, b):
    s = a
    s += b
    s -= 1
    s *= 3
    s //= b
    s %= 7
    s **= 2
    s += a % 5
    return s


def aug_all_float(x, y):
    s = x
    s += y
    s -= 0.25
    s *= 1.5
    s /= y
    s //= 0.5
    s %= 3.0
    s **= 2
    s **= 0.5
    return s


def aug_mixed(n, x):
    s = n
    s += x
    s *= n
    s /= 2
    s -= n
    s //= 1
    return s


def aug_pow_div(x, n):
    y = x
    y **= n
    y /= n
    return y


def swap(a, b):
    a, b = b, a
    return a, b, a - b


def rotate3(a, b, c):
    a, b, c = b, c, a
    return a * 100 + b * 10 + c


def fib(n):
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


def unpack_retype(x, n):
    a, b = x, n
    b, a = a * 2, b + 1
    return a, b


# === division, modulo and power semantics =================================================

def int_divmod(a, b):
    return a // b, a % b


def float_divmod(x, y):
    return x // y, x % y


def mixed_divmod(n, y):
    return n // y, n % y, n / y


def true_div(a, b):
    return a / b


def signed_zero_ops(x, y):
    r = x % y
    q = x // y
    return math.copysign(1.0, r), math.copysign(1.0, q), r, q


def neg_zero_arith(x):
    a = x * -1.0
    b = 0.0 - x
    c = -x
    d = x + 0.0
    e = x - 0.0
    return (math.copysign(1.0, a), math.copysign(1.0, b), math.copysign(1.0, c),
            math.copysign(1.0, d), math.copysign(1.0, e))


def int_pow(a, b):
    return a ** b


def float_pow(x, y):
    return x ** y


def float_int_pow(x, n):
    return x ** n


def int_float_pow(n, y):
    return n ** y


def guarded_mod(x, y):
    return x % y if y != 0 else 0.0


def div_in_loop(n, d):
    s = 0
    for i in range(n):
        s += 100 // (d - i)
    return s


# === unary operators, comparisons ==========================================================

def unary_ops(x):
    return -x, +x, -(-x), not x, -(x - 1)


def chained_cmp(a, b, c):
    return a < b <= c


def cmp_all(x, y):
    return x < y, x <= y, x > y, x >= y, x == y, x != y


def chain4(a, b, c):
    return 0 <= a < b != c > -1


def chain_short(x):
    # `0 < x` is False for x == 0, so `10 // x` must not be evaluated.
    return 0 < x < 10 // x


def in_band(x, lo, hi):
    if lo <= x < hi:
        return 1
    elif x < lo:
        return 0
    else:
        return 2


def int_float_exact_cmp(n, x):
    # Python compares int with float exactly; lldiff (like numba) converts the int to float
    # first, so the corpus stays below 2**53 where both agree (README: differences).
    return n == x, n < x, n > x, n <= x


# === and / or / not (short circuit, value-returning) ======================================

def safe_recip_test(x):
    return x != 0 and 1 / x > 2


def or_default(n):
    return n or 5


def and_value(a, b):
    return a and b


def mixed_andor(n, x):
    return n or x, n and x, x or n, x and n


def guarded_floordiv(a, b):
    return b != 0 and a // b > 1 or a < 0


def short_circuit_if(a, b):
    if b == 0 or a // b > 2:
        return 1
    if a > 0 and (b < 0 or a % b == 0):
        return 2
    return 3


def not_ops(x, n):
    a = not x
    b = not n
    c = not (x > 0 or n < 0)
    d = not not x
    return a, b, c, d, (not a) + b


def bool_chain(a, b, c):
    return a and b or c


def truthy_float_loop(x):
    n = 0
    while x and n < 60:
        x = x / 2
        n += 1
    return n, x


# === bool arithmetic and conversions ======================================================

def bool_arith(x, y):
    t = (x > y) + (x < y) * 2 + True
    u = True * 3.5 - False
    v = (x == y) - (x != y)
    return t, u, v, True + True


def count_positive(a, b, c):
    return (a > 0) + (b > 0) + (c > 0)


def bool_args(p, q):
    r = p + q
    s = p * 2.5
    if p and not q:
        r += 10
    return r, s, p or q, -p


def bool_conv(x):
    return bool(x), bool(x - x), int(bool(x)), float(x > 0), bool(0), bool(1.5)


# === if / elif / else, conditional expressions ============================================

def sign(x):
    if x > 0:
        return 1
    elif x < 0:
        return -1
    else:
        return 0


def classify(x, y):
    if x > 0:
        if y > 0:
            q = 1
        elif y < 0:
            q = 4
        else:
            q = 0
    elif x < 0:
        if y >= 0:
            q = 2
        else:
            q = 3
    else:
        q = 0
    return q


def ifexp_unify(c, x):
    y = 1 if c else 2.5
    z = y * x
    w = x if x > 0 else 0
    return y, z, w


def nested_ifexp(x):
    return -1 if x < 0 else (0 if x == 0 else 1)


def piecewise(x):
    if x < -1.0:
        y = -1.0
    elif x < 0.0:
        y = x * x * x
    elif x < 1.0:
        pass
        y = x
    elif x < 2.0:
        y = 2.0 - x
        if y < 0.5:
            y = y * 2.0
        else:
            pass
    else:
        y = 0.0
    return y


def early_return(x):
    if x < 0:
        return 0
    if x != x:
        return -1.0
    y = math.sqrt(x)
    if y > 10:
        return 10.0
    return y


# === for-range, while, break, continue, return in loops ===================================

def sum_range1(n):
    s = 0
    for i in range(n):
        s += i
    return s


def sum_range2(a, b):
    s = 0
    for i in range(a, b):
        s += i * i
    return s


def sum_range3(a, b, c):
    s = 0
    k = 0
    for i in range(a, b, c):
        s += i
        k += 1
    return s, k


def countdown_const(n):
    s = 0
    for i in range(n, 0, -1):
        s = s * 3 + i
        s = s % 1000003
    t = 0
    for j in range(10, -10, -3):
        t += j
    u = 0
    for k in range(n, -n, NEG_STEP):
        u += k
    return s, t, u


def step_nonconst(n, step):
    c = 0
    last = -999
    for i in range(n, -n, -step):
        c += 1
        last = i
    return c, last


def loop_var_after(n):
    i = -1
    for i in range(n):
        pass
    return i


def loop_var_reassign(n):
    s = 0
    for i in range(n):
        s += i
        i = 100
        s += i
    return s


def range_eval_once(n):
    s = 0
    for i in range(n):
        n -= 1
        s += i + n
    return s, n


def loop_unify(n):
    s = 0
    for i in range(n):
        s += 0.5
    return s


def while_unify(x):
    y = 1
    k = 0
    while y < x and k < 100:
        y *= 1.5
        k += 1
    return y, k


def break_continue(n):
    s = 0
    for i in range(n):
        if i % 3 == 0:
            continue
        if i > 20:
            break
        s += i
    return s


def while_continue(n):
    i = 0
    s = 0
    while i < n:
        i += 1
        if i % 2 == 0:
            continue
        if i > 50:
            break
        s += i
    return s


def nested_break(n):
    count = 0
    for i in range(n):
        for j in range(n):
            if j > i:
                break
            if (i + j) % 2 == 1:
                continue
            count += 1
    return count


def find_pair(n, target):
    for i in range(1, n):
        for j in range(i, n):
            if i * j == target:
                return i, j
    return -1, -1


def while_nested_return(x):
    i = 0
    while i < 30:
        j = 0
        while j < 30:
            if i * i + j * j > x:
                if j == 0:
                    return i, j, -1
                return i, j, 1
            j += 1
        i += 1
    return -1, -1, 0


def first_divisor(n):
    if n < 2:
        return 0
    for d in range(2, n):
        if d * d > n:
            break
        if n % d == 0:
            return d
    return n


def while_true_break(x):
    n = 0
    while True:
        n += 1
        x = x * 0.5 + 1.0
        if abs(x - 2.0) < 1e-9 or n >= 100:
            break
    return x, n


def triangle_while(n):
    k = 0
    t = 0
    while t < n:
        k += 1
        t += k
    return k, t == n


# === builtins: abs min max float int round bool ===========================================

def round_cases(x):
    return round(x), round(-x), round(x + 0.5)


def int_trunc(x):
    return int(x), int(-x), int(x * 10.0) % 7


def builtins_mix(x, n):
    a = abs(x) + abs(n)
    b = min(x, n)
    c = max(x, n, 0)
    d = float(n) / 3
    e = int(x) + n
    f = round(x) * 2
    g = bool(n) + bool(x)
    return a, b, c, d, e, f, g


def float_int_conv(n):
    x = float(n)
    y = x / 7
    return int(y), y, float(int(y)), int(-y)


def abs_cases(x):
    return abs(x), abs(-x), math.copysign(1.0, abs(x))


def clamp(x, lo, hi):
    return max(lo, min(x, hi))


def minmax_order(x, y):
    # Python's min/max keep the first of equal (or unordered) arguments.
    return (min(x, y), max(x, y), min(y, x), max(y, x), max(x, y, 0.0), min(x, y, 1.0),
            math.copysign(1.0, min(x, y)), math.copysign(1.0, max(x, y)))


def minmax_mixed(n, x):
    return min(n, x), max(n, x, 0), abs(n), abs(x)


# === math module ==========================================================================

def trig(x):
    return math.sin(x), math.cos(x), math.tan(x), math.atan(x)


def inv_trig(x):
    return math.asin(x), math.acos(x), math.atan(x)


def atan2_q(y, x):
    return math.atan2(y, x)


def hyperbolic(x):
    return math.sinh(x), math.cosh(x), math.tanh(x), math.asinh(x)


def inv_hyperbolic(x):
    return math.acosh(x), math.atanh(1.0 / x)


def exp_log(x):
    return (math.exp(x), math.expm1(x), math.exp2(x), math.log(x), math.log2(x),
            math.log10(x), math.log1p(x))


def roots(x, y):
    return math.sqrt(x), math.cbrt(x), math.hypot(x, y), math.pow(x, y)


def erf_funcs(x):
    return math.erf(x), math.erfc(x)


def gamma_funcs(x):
    return math.lgamma(x), math.gamma(x)


def rounding_funcs(x):
    return math.floor(x), math.ceil(x), math.trunc(x), math.fabs(x)


def copysign_cases(x, y):
    return math.copysign(x, y), math.copysign(1.0, y), math.fabs(y), math.fabs(x)


def fmod_cases(x, y):
    return math.fmod(x, y), math.copysign(1.0, math.fmod(x, y))


def predicates(x):
    return math.isnan(x), math.isinf(x), math.isfinite(x), math.isnan(x * 0.0)


def constants(k):
    return (math.pi * k, math.e + k, math.tau / 2 - math.pi, math.inf > k,
            math.isnan(math.nan + k), -math.inf < k)


def factorial_series(n):
    s = 0.0
    for k in range(n + 1):
        s += 1.0 / math.factorial(k)
    return s, math.factorial(n)


def sinc(x):
    if x == 0:
        return 1.0
    return math.sin(x) / x


# === numpy scalar equivalents =============================================================

def np_trig(x):
    return np.sin(x), np.cos(x), np.tan(x), np.tanh(x)


def np_exp_log(x):
    return np.exp(x), np.log(x), np.sqrt(x)


def np_misc(x):
    return np.abs(x), np.floor(x), np.ceil(x), np.pi * x, np.e + x


# === module constants and calls between corpus functions ==================================

def free_fall(t):
    return HALF * G * t ** 2, G * t


def use_constants(n):
    if ENABLED:
        r = n * SCALE + HALF
    else:
        r = -1.0
    k = 0
    while k < MAX_ITER and r > TOL:
        r = r / 10.0
        k += 1
    return r, k, BIG - n


def calls_other(x):
    return newton_sqrt(x) + sign(x), horner(x)


def tuple_from_call(a, b):
    q, r = int_divmod(a, b)
    return q * b + r == a, q, r


def two_level_call(x):
    s, h = calls_other(x)
    return s + h, gcd(int(x), 6)


def call_chain(x):
    d, v = free_fall(x)
    return clamp(d, 0.0, 100.0) + besselj(0, v / 10)


# === realistic scientific scalar code =====================================================

def besselj(v, z):
    k = 0
    s = (z / 2) ** v / math.factorial(v)
    out = s
    while abs(s) > 2.220446049250313e-16:
        k += 1
        s *= -1 / k / (k + v) * (z / 2) ** 2
        out += s
    return out


def newton_sqrt(x):
    if x < 0:
        return math.nan
    if x == 0:
        return 0.0
    g = x if x > 1 else 1.0
    for _ in range(100):
        y = 0.5 * (g + x / g)
        if abs(y - g) <= 1e-15 * y:
            return y
        g = y
    return g


def bisect_root(a, b):
    # root of x**3 - 2x - 5 on [a, b]
    fa = a * a * a - 2 * a - 5
    fb = b * b * b - 2 * b - 5
    if fa * fb > 0:
        return math.nan, 0
    n = 0
    while b - a > 1e-12 and n < 200:
        m = 0.5 * (a + b)
        fm = m * m * m - 2 * m - 5
        if fa * fm <= 0:
            b = m
            fb = fm
        else:
            a = m
            fa = fm
        n += 1
    return 0.5 * (a + b), n


def collatz_steps(n):
    steps = 0
    while n != 1 and steps < 1000:
        if n <= 0:
            return -1
        if n % 2 == 0:
            n //= 2
        else:
            n = 3 * n + 1
        steps += 1
    return steps


def gcd(a, b):
    while b != 0:
        a, b = b, a % b
    return abs(a)


def is_prime(n):
    if n < 2:
        return False
    if n % 2 == 0:
        return n == 2
    i = 3
    while i * i <= n:
        if n % i == 0:
            return False
        i += 2
    return True


def digit_sum(n):
    n = abs(n)
    s = 0
    while n > 0:
        s += n % 10
        n //= 10
    return s


def reverse_digits(n):
    neg = n < 0
    n = abs(n)
    r = 0
    while n > 0:
        r = r * 10 + n % 10
        n //= 10
    return -r if neg else r


def popcount(n):
    c = 0
    while n > 0:
        c += n % 2
        n //= 2
    return c


def horner(x):
    return (((3.0 * x - 2.0) * x + 0.5) * x - 1.0) * x + 7.0


def horner_loop(x, n):
    p = 0
    for k in range(n, -1, -1):
        p = p * x + (k + 1)
    return p


def euler_decay(y0, h):
    # dy/dt = -2 y + sin(t)
    t = 0.0
    y = y0
    for _ in range(N_STEPS):
        y += h * (-2.0 * y + math.sin(t))
        t += h
    return y


def rk4_oscillator(x0, v0, h):
    # x'' = -x
    x = x0
    v = v0
    for _ in range(N_STEPS):
        k1x = v
        k1v = -x
        k2x = v + 0.5 * h * k1v
        k2v = -(x + 0.5 * h * k1x)
        k3x = v + 0.5 * h * k2v
        k3v = -(x + 0.5 * h * k2x)
        k4x = v + h * k3v
        k4v = -(x + h * k3x)
        x += h / 6.0 * (k1x + 2.0 * k2x + 2.0 * k3x + k4x)
        v += h / 6.0 * (k1v + 2.0 * k2v + 2.0 * k3v + k4v)
    return x, v, 0.5 * (x * x + v * v)


def kahan_harmonic(n):
    s = 0.0
    c = 0.0
    for i in range(1, n + 1):
        y = 1.0 / i - c
        t = s + y
        c = (t - s) - y
        s = t
    return s, c


def fixed_point_cos(x0):
    x = x0
    for it in range(MAX_ITER):
        nx = math.cos(x)
        if abs(nx - x) < TOL:
            return nx, it
        x = nx
    return x, -1


def trapezoid_gauss(a, b, n):
    h = (b - a) / n
    s = 0.5 * (math.exp(-a * a) + math.exp(-b * b))
    for i in range(1, n):
        x = a + i * h
        s += math.exp(-x * x)
    return s * h


def simpson_sin(a, b, n):
    if n % 2 == 1:
        n += 1
    h = (b - a) / n
    s = math.sin(a) + math.sin(b)
    for i in range(1, n):
        if i % 2 == 1:
            s += 4 * math.sin(a + i * h)
        else:
            s += 2 * math.sin(a + i * h)
    return s * h / 3


def leibniz_pi(n):
    s = 0.0
    for k in range(n):
        s += (-1) ** k / (2 * k + 1)
    return 4 * s


def mandelbrot(cr, ci):
    zr = 0.0
    zi = 0.0
    for n in range(100):
        zr2 = zr * zr
        zi2 = zi * zi
        if zr2 + zi2 > 4.0:
            return n
        zi = 2.0 * zr * zi + ci
        zr = zr2 - zi2 + cr
    return 100


def logistic_map(r, x0, n):
    x = x0
    for _ in range(n):
        x = r * x * (1.0 - x)
    return x


def exp_taylor(x):
    term = 1.0
    s = 1.0
    k = 0
    while abs(term) > 1e-17 * abs(s) and k < 500:
        k += 1
        term *= x / k
        s += term
    return s, k


def isqrt_newton(n):
    if n < 0:
        return -1
    if n < 2:
        return n
    x = n
    y = (x + 1) // 2
    while y < x:
        x = y
        y = (x + n // x) // 2
    return x


def sum_divisors(n):
    s = 0
    for d in range(1, n + 1):
        if n % d == 0:
            s += d
    return s


def binomial(n, k):
    if k < 0 or k > n:
        return 0
    if k > n - k:
        k = n - k
    r = 1
    for i in range(1, k + 1):
        r = r * (n - k + i) // i
    return r


def compound(p, r, n):
    a = p
    for _ in range(n):
        a *= 1 + r / 12
    return a, a - p


def projectile(v, angle_deg):
    th = angle_deg * math.pi / 180.0
    vx = v * math.cos(th)
    vy = v * math.sin(th)
    t_flight = 2.0 * vy / G
    return vx * t_flight, vy * vy / (2 * G), t_flight


def lcg(seed, n):
    x = seed
    for _ in range(n):
        x = (1103515245 * x + 12345) % 2147483648
    return x


def secant_cos(x0, x1):
    # solves cos(x) = x
    f0 = math.cos(x0) - x0
    f1 = math.cos(x1) - x1
    for it in range(50):
        if f1 == f0:
            break
        x2 = x1 - f1 * (x1 - x0) / (f1 - f0)
        x0 = x1
        f0 = f1
        x1 = x2
        f1 = math.cos(x1) - x1
        if abs(f1) < 1e-14:
            break
    return x1


def golden_min(a, b):
    # minimises (x - 1.3)**2 + 0.5 on [a, b]
    gr = (math.sqrt(5.0) - 1.0) / 2.0
    c = b - gr * (b - a)
    d = a + gr * (b - a)
    k = 0
    while abs(b - a) > 1e-10 and k < 200:
        if (c - 1.3) ** 2 < (d - 1.3) ** 2:
            b = d
        else:
            a = c
        c = b - gr * (b - a)
        d = a + gr * (b - a)
        k += 1
    return (a + b) / 2, k


def quadratic(a, b, c):
    if a == 0:
        if b == 0:
            return math.nan, math.nan
        return -c / b, -c / b
    disc = b * b - 4 * a * c
    if disc < 0:
        return math.nan, math.nan
    sq = math.sqrt(disc)
    if b >= 0:
        q = -0.5 * (b + sq)
    else:
        q = -0.5 * (b - sq)
    if q == 0:
        return 0.0, 0.0
    return q / a, c / q


def to_polar(x, y):
    r = math.hypot(x, y)
    th = math.atan2(y, x)
    return r, th, r * math.cos(th), r * math.sin(th)


def welford(n, x0):
    mean = 0.0
    m2 = 0.0
    x = x0
    for i in range(1, n + 1):
        x = (x * 1.7 + 0.3) % 1.0
        d = x - mean
        mean += d / i
        m2 += d * (x - mean)
    var = m2 / (n - 1) if n > 1 else 0.0
    return mean, var


def power_mod(b, e, m):
    if m == 1:
        return 0
    r = 1
    b = b % m
    while e > 0:
        if e % 2 == 1:
            r = r * b % m
        e //= 2
        b = b * b % m
    return r


# === the cases ============================================================================

CASES = [
    # assignment / augmented assignment / unpacking
    Case(assign_chain, [(1, 2), (-7, 3), (1.5, -2.25), (0.0, -0.0), (INF, 1.0), (INF, -INF),
                        (NAN, 1.0), (10 ** 15, 3)]),
    Case(aug_all_int, [(5, 3), (-5, 3), (7, -2), (0, 1), (-9, -4), (10 ** 12, 7), (4, 0),
                       (0, 0)]),
    Case(aug_all_float, [(1.0, 2.0), (-3.5, 0.75), (2.0, -0.3), (INF, 1.0), (NAN, 2.0),
                         (1e300, 1e-300), (1.0, 0.0), (0.0, -0.0)]),
    Case(aug_mixed, [(3, 0.5), (-4, 2.25), (0, -0.0), (7, NAN), (2, INF), (-3, -1e10)]),
    Case(aug_pow_div, [(2.0, 3), (1.5, 4), (-2.0, 5), (3.0, -2), (0.5, -3), (10.0, 22),
                       (NAN, 1), (-0.0, 3), (2.0, 0)]),
    Case(swap, [(1, 2), (-3, 7), (2.5, -1.0), (NAN, 0.0)]),
    Case(rotate3, [(1, 2, 3), (-1, 0, 9), (0.5, 1.5, -2.5)]),
    Case(fib, [(0,), (1,), (2,), (10,), (50,), (90,), (-3,)]),
    Case(unpack_retype, [(1.5, 3), (-0.0, -1), (NAN, 0)]),
    # division / modulo / power
    Case(int_divmod, [(7, 2), (-7, 2), (7, -2), (-7, -2), (0, 3), (6, -3), (-6, 3), (1, 7),
                      (-1, 7), (10 ** 18, 7), (-10 ** 18, 7), (1, 0), (0, 0)]),
    Case(float_divmod, [(7.5, 2.0), (-7.5, 2.0), (7.5, -2.0), (-7.5, -2.0), (1.0, 0.1),
                        (-1.0, 0.1), (-0.0, 1.0), (0.0, -1.0), (5.0, INF), (-5.0, INF),
                        (5.0, -INF), (-5.0, -INF), (INF, 2.0), (NAN, 1.0), (1.0, NAN),
                        (1e308, 1e-308), (3.0, 1.5), (1e-320, 3.0),
                        (1.0, 0.0), (1.0, -0.0), (NAN, 0.0), (0.0, 0.0)]),
    Case(mixed_divmod, [(7, 2.5), (-7, 2.5), (7, -2.5), (0, 0.3), (3, INF), (-3, INF),
                        (5, NAN), (7, 0.0), (7, -0.0)]),
    Case(true_div, [(7, 2), (-7, 2), (1, 3), (0, 5), (0, -5), (10 ** 18, 3), (5, 0), (0, 0),
                    (1.0, 3.0), (-0.0, 5.0), (INF, INF), (1e308, 1e-308), (NAN, 2.0),
                    (1.0, 0.0), (0.0, 0.0), (NAN, -0.0), (True, 2)]),
    Case(signed_zero_ops, [(-0.0, 1.0), (0.0, -1.0), (3.0, 3.0), (-3.0, 3.0), (3.0, -3.0),
                           (-3.0, -3.0), (0.5, -1.0), (-0.5, 1.0), (0.0, 1.0), (-0.0, -1.0),
                           (1.0, 0.0)]),
    Case(neg_zero_arith, [(0.0,), (-0.0,), (1.0,), (-2.0,), (INF,)]),
    Case(int_pow, [(2, 10), (-3, 3), (0, 0), (-1, 7), (10, 18), (7, 0), (3, 39), (-2, 61),
                   (0, 5), (-1, 1000001), (1, 1000000)]),
    Case(float_pow, [(2.0, 0.5), (2.0, -1.5), (0.0, 0.0), (NAN, 0.0), (1.0, NAN),
                     (-1.0, INF), (INF, -1.0), (-INF, 3.0), (-2.0, 3.0), (0.5, 1e10),
                     (4.0, 0.5), (-0.0, 2.0), (-8.0, 1.0 / 3.0), (-2.0, 0.5),
                     (10.0, 400.0)]),
    Case(float_int_pow, [(2.5, 3), (1.5, 4), (-2.0, 5), (3.0, -2), (0.5, -3), (NAN, 0),
                         (-0.0, 3), (INF, 2), (1.1, 3), (-1.5, 0), (10.0, 22), (0.1, 2),
                         (-INF, 3)]),
    Case(int_float_pow, [(2, 0.5), (4, -0.5), (-8, 2.0), (0, 0.0), (10, -2.0), (3, INF),
                         (-2, 0.5)]),
    Case(guarded_mod, [(5.5, 2.0), (-5.5, 2.0), (5.0, 0.0), (NAN, 0.0), (1.0, NAN),
                       (2.0, -0.0)]),
    Case(div_in_loop, [(5, 10), (5, -1), (0, 0), (5, 3)]),
    # unary / comparisons
    Case(unary_ops, [(0.0,), (-0.0,), (2.5,), (-3.0,), (NAN,), (INF,), (0,), (7,), (-4,),
                     (True,)]),
    Case(chained_cmp, [(1, 2.0, 2), (1, 2, 1), (2.5, 2.5, 3), (NAN, 1.0, 2.0),
                       (-0.0, 0.0, 0.0), (0, 0, 0), (-INF, 0.0, INF)]),
    Case(cmp_all, [(1.0, 2.0), (2.0, 2.0), (NAN, 1.0), (NAN, NAN), (-0.0, 0.0), (INF, INF),
                   (1, 1.0), (3, 2.5), (-1, -1), (2, 5)]),
    Case(chain4, [(1, 2, 3), (0, 0, 1), (-1, 2, 3), (1, 2, 2), (1, 5, -1), (0, 1, 0)]),
    Case(chain_short, [(0,), (1,), (2,), (5,), (-3,)]),
    Case(in_band, [(0.5, 0.0, 1.0), (1.0, 0.0, 1.0), (-1.0, 0.0, 1.0), (NAN, 0.0, 1.0),
                   (3, 1, 5), (1, 0.5, 2), (-0.0, 0.0, 1.0)]),
    Case(int_float_exact_cmp, [(3, 3.0), (-1, -0.5), (0, -0.0), (1, NAN), (5, INF),
                               (2 ** 62, 2.0 ** 62), (2 ** 52 + 1, 2.0 ** 52)]),
    # and / or / not
    Case(safe_recip_test, [(0.0,), (-0.0,), (0.25,), (1.0,), (-0.1,), (NAN,), (INF,), (0,),
                           (1,)]),
    Case(or_default, [(0,), (3,), (-1,), (0.0,), (-0.0,), (NAN,), (2.5,)]),
    Case(and_value, [(0, 5), (3, 5), (3, 0), (-2, -3), (0.0, 1.5), (NAN, 2.0), (1.5, 0.0)]),
    Case(mixed_andor, [(0, 2.5), (3, 2.5), (0, -0.0), (-7, NAN), (0, 0.0)]),
    Case(guarded_floordiv, [(10, 0), (-3, 0), (10, 3), (2, 3), (-10, 3)]),
    Case(short_circuit_if, [(5, 0), (9, 2), (4, 2), (4, -3), (3, 2), (-4, 2)]),
    Case(not_ops, [(0.0, 0), (1.5, 3), (-0.0, -1), (NAN, 0)]),
    Case(bool_chain, [(1, 2, 3), (0, 2, 3), (1, 0, 3), (0, 0, 0)]),
    Case(truthy_float_loop, [(1.0,), (0.0,), (-0.0,), (NAN,), (5e-324,), (-3.0,), (INF,)]),
    # bool arithmetic
    Case(bool_arith, [(1.0, 2.0), (2.0, 1.0), (1.0, 1.0), (NAN, 1.0)]),
    Case(count_positive, [(1, -1, 2.5), (0, 0, 0.0), (NAN, INF, -INF), (3, 4, 5.0)]),
    Case(bool_args, [(True, False), (False, False), (True, True), (False, True)]),
    Case(bool_conv, [(0.0,), (-0.0,), (2.5,), (NAN,), (INF,), (0,), (3,)]),
    # if / elif / else, conditional expressions
    Case(sign, [(3.5,), (-2.0,), (0.0,), (-0.0,), (NAN,), (INF,), (-INF,), (5,), (-5,), (0,)]),
    Case(classify, [(1.0, 1.0), (1.0, -1.0), (-1.0, 1.0), (-1.0, -1.0), (0.0, 5.0),
                    (1.0, 0.0), (NAN, 1.0), (-2.0, NAN)]),
    Case(ifexp_unify, [(True, 2.0), (False, 2.0), (True, -3.0), (False, NAN)]),
    Case(nested_ifexp, [(2.5,), (-0.0,), (NAN,), (-INF,), (-3,), (0,), (8,)]),
    Case(piecewise, [(-2.0,), (-0.5,), (0.25,), (1.25,), (1.75,), (3.0,), (NAN,), (INF,),
                     (-INF,), (-0.0,), (-1.0,), (1.0,), (2.0,)]),
    Case(early_return, [(-1.0,), (NAN,), (4.0,), (1e4,), (-0.0,), (INF,), (2.0,)]),
    # loops
    Case(sum_range1, [(0,), (1,), (10,), (-5,), (1000,)]),
    Case(sum_range2, [(0, 10), (5, 5), (10, 0), (-5, 5), (10 ** 9, 10 ** 9 + 3)]),
    Case(sum_range3, [(0, 10, 3), (10, 0, -3), (10, 0, 3), (0, 10, -1), (-5, 5, 2),
                      (5, -5, -2), (0, 1, 100), (0, 100, 7), (100, -100, -7),
                      (-10 ** 15, 10 ** 15, 10 ** 14), (7, 7, 1), (7, 7, -1), (3, 2, -1)]),
    Case(countdown_const, [(0,), (5,), (-3,), (100,)]),
    Case(step_nonconst, [(10, 3), (10, 1), (7, 7), (0, 2), (5, -2), (6, 4)]),
    Case(loop_var_after, [(0,), (1,), (10,), (-3,)]),
    Case(loop_var_reassign, [(5,), (0,)]),
    Case(range_eval_once, [(5,), (0,), (-2,)]),
    Case(loop_unify, [(0,), (3,), (1000,)]),
    Case(while_unify, [(100.0,), (0.5,), (NAN,), (INF,), (1.0,)]),
    Case(break_continue, [(0,), (10,), (100,)]),
    Case(while_continue, [(0,), (10,), (100,)]),
    Case(nested_break, [(0,), (5,), (20,)]),
    Case(find_pair, [(10, 12), (10, 97), (5, 0), (30, 841), (1, 1)]),
    Case(while_nested_return, [(10.0,), (0.5,), (-1.0,), (NAN,), (1e9,), (0.0,)]),
    Case(first_divisor, [(1,), (2,), (15,), (97,), (1000003,), (-10,), (49,)]),
    Case(while_true_break, [(0.0,), (1e6,), (NAN,), (INF,), (2.0,)]),
    Case(triangle_while, [(0,), (1,), (10,), (11,), (10 ** 6,), (-5,)]),
    # builtins
    Case(round_cases, [(0.5,), (1.5,), (2.5,), (-0.5,), (-1.5,), (0.49999999999999994,),
                       (1e15 + 0.5,), (4503599627370497.0,), (-0.0,), (1e18,), (-2.6,),
                       (NAN,), (INF,)]),
    Case(int_trunc, [(-2.7,), (2.7,), (-0.0,), (1e17,), (0.999999,), (-7.3,), (NAN,), (INF,)]),
    Case(builtins_mix, [(2.5, -3), (-1.5, 4), (0.0, 0), (-0.0, -7), (1e10, 5), (-3.5, 2)]),
    Case(float_int_conv, [(100,), (-100,), (0,), (10 ** 15,), (BIG,), (True,)]),
    Case(abs_cases, [(-0.0,), (NAN,), (-INF,), (-2.5,), (3.0,), (-5,), (0,)]),
    Case(clamp, [(0.5, 0.0, 1.0), (-1, 0, 1), (2.5, 0, 1), (NAN, 0.0, 1.0), (5.0, NAN, 1.0),
                 (0.5, 0.0, NAN), (-INF, -1.0, 1.0)]),
    Case(minmax_order, [(1.0, 2.0), (NAN, 1.0), (1.0, NAN), (-0.0, 0.0), (0.0, -0.0),
                        (-INF, INF), (3.0, 3.0)]),
    Case(minmax_mixed, [(1, 2.5), (3, 2.5), (-4, -0.0), (0, NAN), (2, 2.0), (-5, -INF)]),
    # math
    Case(trig, [(0.0,), (-0.0,), (0.5,), (-1.25,), (3.0,), (100.0,), (1e6,), (NAN,), (INF,),
                (1,)]),
    Case(inv_trig, [(0.0,), (0.5,), (-1.0,), (1.0,), (0.999,), (-0.3,), (NAN,), (2.0,)]),
    Case(atan2_q, [(1.0, 1.0), (1.0, -1.0), (-1.0, -1.0), (0.0, -0.0), (-0.0, -0.0),
                   (0.0, 0.0), (-0.0, 1.0), (INF, INF), (-INF, -INF), (NAN, 1.0), (1, 2),
                   (5.0, 0.0)]),
    Case(hyperbolic, [(0.0,), (-0.0,), (0.5,), (-3.0,), (20.0,), (NAN,), (INF,), (-INF,),
                      (800.0,)]),
    Case(inv_hyperbolic, [(2.0,), (10.0,), (INF,), (NAN,), (1.0,), (0.5,), (-2.0,), (0.0,)]),
    Case(exp_log, [(0.5,), (1.0,), (2.0,), (10.0,), (1e-10,), (100.0,), (INF,), (NAN,),
                   (0.0,), (-1.0,), (-0.5,), (1000.0,)]),
    Case(roots, [(4.0, 3.0), (2.0, 0.5), (27.0, -1.0), (-0.0, 0.0), (INF, NAN), (3, 4),
                 (1e-300, 1e-300), (-8.0, 2.0), (0.0, -1.0), (1e300, 1e300)]),
    Case(erf_funcs, [(0.0,), (-0.0,), (0.5,), (-1.5,), (3.0,), (10.0,), (-30.0,), (1e-8,),
                     (NAN,), (INF,), (-INF,)]),
    Case(gamma_funcs, [(0.5,), (1.0,), (4.5,), (5.0,), (-1.5,), (10.3,), (0.1,), (3.7,), (50.5,),
                       (NAN,), (INF,), (0.0,), (-2.0,), (200.0,)]),
    Case(rounding_funcs, [(2.5,), (-2.5,), (-0.0,), (0.999,), (-1e15 - 0.5,), (1e18,),
                          (-0.3,), (7,), (NAN,), (INF,), (-INF,)]),
    Case(copysign_cases, [(3.0, -0.0), (-3.0, 0.0), (2.5, -1.0), (-0.0, 3.0), (INF, -2.0),
                          (NAN, -1.0), (1.0, -INF), (-4, 1)]),
    Case(fmod_cases, [(-7.5, 2.0), (7.5, -2.0), (5.0, INF), (-0.0, 3.0), (-4.0, 2.0),
                      (1e300, 3.0), (NAN, 1.0), (INF, 2.0), (1.0, 0.0), (3.0, -0.0)]),
    Case(predicates, [(0.0,), (INF,), (-INF,), (NAN,), (1e308,), (5e-324,), (-1.0,)]),
    Case(constants, [(1,), (0.5,), (-2,), (NAN,), (INF,)]),
    Case(factorial_series, [(0,), (1,), (5,), (20,), (-1,)]),
    Case(sinc, [(0.0,), (-0.0,), (1e-300,), (1.0,), (-3.0,), (NAN,), (INF,)]),
    # numpy
    Case(np_trig, [(0.0,), (0.5,), (-1.25,), (3.0,), (10.0,), (NAN,)]),
    Case(np_exp_log, [(0.5,), (1.0,), (2.0,), (10.0,), (1e-10,), (100.0,), (INF,), (NAN,)]),
    Case(np_misc, [(0.5,), (-1.25,), (-0.0,), (3.0,), (-2.5,), (NAN,), (INF,), (-INF,)]),
    # module constants, calls
    Case(free_fall, [(0.0,), (1.5,), (-2.0,), (NAN,), (3,)]),
    Case(use_constants, [(1,), (0,), (-4,), (10 ** 6,)]),
    Case(calls_other, [(2.0,), (0.0,), (-4.0,), (1e10,), (NAN,)]),
    Case(tuple_from_call, [(7, 2), (-7, 2), (7, -3), (0, 5), (7, 0)]),
    Case(two_level_call, [(2.0,), (9.0,), (-4.5,), (0.0,)]),
    Case(call_chain, [(1.0,), (0.0,), (-2.5,), (10.0,)]),
    # scientific
    Case(besselj, [(0, 0.0), (0, 1.0), (1, 2.5), (2, 10.0), (0, 20.0), (1, -3.7), (0, -0.0),
                   (3, 1.5), (5, 0.5), (4, 3.0), (3, 5.0), (2, 0.001), (0, NAN), (1, NAN),
                   (-1, 1.0)]),
    Case(newton_sqrt, [(2.0,), (0.0,), (1e-8,), (1e10,), (-4.0,), (NAN,), (INF,), (0.25,),
                       (16,)]),
    Case(bisect_root, [(2.0, 3.0), (0.0, 1.0), (2, 3), (NAN, 3.0), (-INF, INF), (2.0, 2.5)]),
    Case(collatz_steps, [(1,), (6,), (27,), (97,), (0,), (-5,), (837799,), (10 ** 15,)]),
    Case(gcd, [(12, 18), (-12, 18), (12, -18), (0, 0), (0, 5), (17, 5), (10 ** 18, 6 * 10 ** 17),
               (1071, 462), (-4, -6)]),
    Case(is_prime, [(0,), (1,), (2,), (3,), (4,), (97,), (561,), (1000003,), (999983,),
                    (-7,), (1000001,)]),
    Case(digit_sum, [(0,), (12345,), (-987,), (10 ** 18 - 1,)]),
    Case(reverse_digits, [(0,), (12345,), (-120,), (10 ** 17 + 3,)]),
    Case(popcount, [(0,), (1,), (255,), (2 ** 62 - 1,), (-3,)]),
    Case(horner, [(0.0,), (1.0,), (-1.5,), (2.25,), (1e100,), (INF,), (-INF,), (NAN,), (2,)]),
    Case(horner_loop, [(0.5, 5), (2.0, 0), (-1.0, 10), (3, 4), (0.5, -1)]),
    Case(euler_decay, [(1.0, 0.01), (0.0, 0.1), (-2.0, 0.05), (1.0, 1.5), (NAN, 0.1)]),
    Case(rk4_oscillator, [(1.0, 0.0, 0.1), (0.0, 1.0, 0.05), (2.0, -1.0, 0.5)]),
    Case(kahan_harmonic, [(0,), (1,), (1000,)]),
    Case(fixed_point_cos, [(0.0,), (1.0,), (100.0,), (NAN,), (-0.5,)]),
    Case(trapezoid_gauss, [(0.0, 1.0, 100), (-2.0, 2.0, 50), (0.0, 0.0, 10), (1, 0, 7),
                           (0.0, 1.0, 0)]),
    Case(simpson_sin, [(0.0, math.pi, 10), (0.0, 1.0, 7), (-1.0, 2.0, 1), (0.0, 1.0, 0)]),
    Case(leibniz_pi, [(0,), (1,), (1000,)]),
    Case(mandelbrot, [(0.0, 0.0), (1.0, 1.0), (-0.75, 0.1), (0.3, 0.5), (NAN, 0.0),
                      (INF, 0.0), (-2.0, 0.0)]),
    Case(logistic_map, [(3.7, 0.5, 100), (2.5, 0.1, 50), (4.0, 0.3, 0), (3.2, NAN, 10)]),
    Case(exp_taylor, [(0.0,), (1.0,), (-5.0,), (20.0,), (NAN,), (INF,), (-1e-3,)]),
    Case(isqrt_newton, [(0,), (1,), (15,), (16,), (10 ** 18,), (2 ** 62,), (-4,), (99,)]),
    Case(sum_divisors, [(1,), (12,), (28,), (997,), (0,)]),
    Case(binomial, [(5, 2), (10, 0), (10, 11), (30, 15), (60, 30), (-3, 1), (7, -1)]),
    Case(compound, [(1000.0, 0.05, 120), (1, 0, 12), (100.0, -1.0, 5), (1.0, NAN, 3)]),
    Case(projectile, [(10.0, 45.0), (0.0, 30.0), (20, 90), (NAN, 10.0), (5.0, -30.0)]),
    Case(lcg, [(0, 10), (42, 100), (-1, 5), (2 ** 31 - 1, 3)]),
    Case(secant_cos, [(0.0, 1.0), (0.5, 0.5), (NAN, 1.0), (-1.0, 3.0)]),
    Case(golden_min, [(0.0, 3.0), (-5, 5), (2.0, 2.0), (NAN, 1.0)]),
    Case(quadratic, [(1.0, -3.0, 2.0), (1, 2, 5), (0.0, 2.0, 4.0), (0.0, 0.0, 1.0),
                     (1.0, 0.0, 0.0), (2.0, 4.0, 2.0), (1e-10, 1.0, 1.0), (NAN, 1.0, 1.0),
                     (1.0, -1e8, 1.0)]),
    Case(to_polar, [(1.0, 1.0), (3.0, 4.0), (-1.0, 0.0), (0.0, -0.0), (-2.0, -5.0),
                    (INF, 1.0), (NAN, 1.0)]),
    Case(welford, [(10, 0.1), (1, 0.5), (0, 0.2), (100, 0.33)]),
    Case(power_mod, [(2, 10, 1000), (3, 200, 13), (7, 0, 5), (-3, 5, 7), (123456, 789, 1000000007),
                     (5, 3, 1), (5, 3, -7), (5, 3, 0)]),
]
