"""SIMD lanes (passes/spmd.py, codegen/spmd.py): lldiff.vectorize in SPMD form gives what the
scalar loop gives, for the whole corpus (primal, forward and reverse mode), with lanes that
leave loops at very different iterations, take different branches, hold NaN and infinities,
or fail; and the SPMD form is what ran.

The oracle is the scalar map (`simd=False`), itself checked against scalar calls and
independent oracles elsewhere (test_vectorize.py, test_corpus.py, test_grad.py, ...).
Results must be equal bit for bit: every lane runs the scalar code's operations in the same
order and libm is called lane by lane, so there is nothing to round differently -- except
`pow`, computed in vector code that calls libm only for the lanes where it cannot prove
libm's result (codegen/vmath.py), tested here against libm over its hard cases.
"""

import math
import os
import sys
import types

import numpy as np
import pytest

import lldiff
from lldiff.__main__ import poor_besselj
from lldiff.ir import F64, I64, print_func
from lldiff.passes.spmd import NotSpmd, spmd_func, varying_values

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import corpus  # noqa: E402

FUNCS = {name: obj for name, obj in vars(corpus).items()
         if isinstance(obj, types.FunctionType) and obj.__module__ == corpus.__name__}


def lanes():
    from lldiff.runtime import get_engine
    return get_engine().simd_lanes()


def bits(a):
    """Array `a` as comparable bit patterns (floats by their bits: -0.0 != 0.0)."""
    a = np.asarray(a)
    return a.view(np.int64) if a.dtype == np.float64 else a


def same(a, b):
    if isinstance(a, tuple) or isinstance(b, tuple):
        return isinstance(a, tuple) and isinstance(b, tuple) and len(a) == len(b) and \
            all(same(x, y) for x, y in zip(a, b))
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(bits(a), bits(b))


def outcome(vf, args):
    try:
        with np.errstate(all="ignore"):
            return vf(*args), None
    except Exception as e:  # noqa: BLE001 - an exception is an outcome to compare
        return None, e


def ran_spmd(d):
    """Whether a SIMD kernel of dispatcher `d` ran the SPMD form (not the scalar fallback)."""
    return any(k[0] == "simd" and hasattr(v[0], "_lldiff_spmd") for k, v in d._maps.items())


# --- the corpus -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def jitted():
    ns = dict(vars(corpus))
    for name, fn in FUNCS.items():
        clone = types.FunctionType(fn.__code__, ns, fn.__name__, fn.__defaults__, fn.__closure__)
        ns[name] = lldiff.jit(clone)
    return ns


def _signature(args):
    return tuple(float if isinstance(a, float) else bool if isinstance(a, bool) else int
                 for a in args)


def _cases():
    out = []
    for case in corpus.CASES:
        groups = {}
        for args in case.inputs:
            groups.setdefault(_signature(args), []).append(args)
        for sig, inputs in groups.items():
            out.append(pytest.param(case.fn.__name__, inputs,
                                    id=f"{case.fn.__name__}-{''.join(t.__name__[0] for t in sig)}"))
    return out


def _lanes_of(inputs, n):
    """n argument tuples cycling through `inputs` with a stride that mixes them across the
    SIMD lanes of every block (different trip counts and branches side by side)."""
    k = len(inputs)
    step = next(s for s in (3, 5, 7, 11, 1) if math.gcd(s, k) == 1)
    return [inputs[(i * step) % k] for i in range(n)]


def _columns(rows):
    return [np.array([r[j] for r in rows]) for j in range(len(rows[0]))]


STATS = {"spmd": 0, "scalar": 0}


def _compare(make, args, what):
    """vectorize(make()) with SIMD lanes against the scalar loop on `args`: same values bit
    for bit, or the same exception."""
    simd, scalar = lldiff.vectorize(make(), threads=1), lldiff.vectorize(make(), threads=1,
                                                                         simd=False)
    (a, ea), (b, eb) = outcome(simd, args), outcome(scalar, args)
    if eb is not None:
        assert type(ea) is type(eb) and str(ea) == str(eb), f"{what}: {ea!r} vs {eb!r}"
        return
    assert ea is None, f"{what}: SIMD raised {ea!r}, the scalar loop returned"
    assert same(a, b), f"{what}: SIMD {a} vs scalar {b}"


@pytest.mark.parametrize("name,inputs", _cases())
def test_corpus_in_lanes_equals_the_scalar_loop(name, inputs, jitted):
    d = jitted[name]
    w = lanes()
    n = 3 * w + 3  # three blocks of lanes and a scalar tail
    ok = []
    for args in inputs:  # inputs one at a time: which raise (tested mixed in below)
        try:
            with np.errstate(all="ignore"):
                lldiff.vectorize(d, simd=False)(*args)
            ok.append(args)
        except (ArithmeticError, ValueError):
            pass
        except TypeError:
            pytest.skip(f"{name} is not mapped by lldiff.vectorize (arrays or no result)")
    if ok:
        cols = _columns(_lanes_of(ok, n))
        _compare(lambda: d, cols, f"{name} all lanes varying")
        # the first argument the same in every lane: it stays a scalar in the SPMD form
        _compare(lambda: d, [ok[0][0]] + cols[1:], f"{name} first argument uniform")
        floats = [j for j, a in enumerate(ok[0]) if isinstance(a, float)]
        if floats:
            for kind, make in (("grad", lambda: lldiff.grad(d, argnums=tuple(floats))),
                               ("jacfwd", lambda: lldiff.jacfwd(d, argnums=tuple(floats)))):
                try:
                    make()(*ok[0])
                except (TypeError, ArithmeticError, ValueError, lldiff.CompileError):
                    continue  # no derivative of this function here (int result, ...)
                _compare(make, cols, f"{kind}({name})")
    if len(ok) < len(inputs):  # the failing inputs among good ones: the scalar loop's error
        rows = _lanes_of(ok or inputs, n)
        bad = [a for a in inputs if a not in ok]
        rows[w + 2] = bad[0]  # in the middle of the second block
        _compare(lambda: d, _columns(rows), f"{name} failing lane")
    STATS["spmd" if ran_spmd(d) else "scalar"] += 1


def test_the_whole_corpus_runs_in_lanes():
    """The corpus test above ran SPMD forms, not the scalar fallback, for every function (the
    corpus makes no arrays: what has no SPMD form)."""
    if sum(STATS.values()) < 50:
        pytest.skip("run with the corpus test")
    assert STATS["scalar"] == 0, STATS


# --- lanes that diverge -------------------------------------------------------------------

def series(x, tol):
    """exp(x) by its series: the trip count depends on x (1 for x = 0, ~150 for x = 60)."""
    term = 1.0
    total = 1.0
    k = 0
    while abs(term) > tol * abs(total) and k < 500:
        k += 1
        term *= x / k
        total += term
    return total


def branches(x, n):
    if x > 1.0:
        y = math.sin(x) * n
    elif x < -1.0:
        y = math.log(-x) + n // 3
    else:
        y = x * x
        for i in range(n):
            y = y * 0.5 + math.cos(i * x)
    return y


def test_while_loops_whose_lanes_leave_at_very_different_iterations():
    f = lldiff.jit(series)
    x = np.concatenate([[0.0, 60.0, 1e-300, -30.0], np.linspace(-50, 50, 101),
                        [math.nan, math.inf, -math.inf, 5e-324]])
    for make in (lambda: f, lambda: lldiff.grad(f, argnums=0),
                 lambda: lldiff.value_and_grad(f, argnums=0),
                 lambda: lldiff.jacfwd(f, argnums=0)):
        _compare(make, [x, 1e-16], "series")
    assert ran_spmd(f)
    x = np.linspace(-1, 50, 103)  # (no cancellation in the series)
    g = lldiff.vectorize(lldiff.grad(f, argnums=0))(x, 1e-16)
    assert np.allclose(g, np.exp(x), rtol=1e-13, atol=0)  # d/dx exp = exp


def test_branches_per_lane_with_loops_inside_them():
    f = lldiff.jit(branches)
    x = np.linspace(-3, 3, 61)
    n = np.arange(61) % 7
    _compare(lambda: f, [x, n], "branches")
    _compare(lambda: f, [x, 4], "branches, n uniform")
    _compare(lambda: lldiff.grad(f, argnums=0), [x, n], "grad(branches)")
    _compare(lambda: lldiff.jacfwd(f, argnums=0), [x, n], "jacfwd(branches)")
    _compare(lambda: f, [np.array([math.nan, math.inf, -math.inf] * 6), n[:18]], "nan/inf")
    assert ran_spmd(f)


def divides(x, n):
    if x > 0:
        return x / n
    return x + 1


def test_a_lane_failing_raises_the_scalar_loops_error_for_the_first_failing_element():
    f = lldiff.jit(divides)
    x = np.linspace(-1, 1, 40)  # n = 0 only where x <= 0: those lanes never divide
    _compare(lambda: f, [x, np.where(x > 0, 2, 0)], "inactive lanes")
    n = np.full(40, 3)
    n[[22, 30]] = 0
    with pytest.raises(ZeroDivisionError, match="division by zero"):
        lldiff.vectorize(f)(x, n)
    out = np.zeros(40)
    with pytest.raises(ZeroDivisionError):
        lldiff.vectorize(f)(x, n, out=out)
    expect = np.zeros(40)
    with pytest.raises(ZeroDivisionError):
        lldiff.vectorize(f, simd=False)(x, n, out=expect)
    assert same(out[:22], expect[:22])  # what precedes the failing element is written


def gamma_then_divide(v, x):
    return math.gamma(v + 1) * math.lgamma(v + 2) / x + math.atan(v) * x


def test_uniform_libm_calls_leave_the_loop_but_not_the_checks():
    """libm calls on uniform values are pure (codegen/llvm.py `pure`), so LLVM runs them once
    per kernel call, ahead of checks that precede them per element: the results, the
    element a failure is reported for and what precedes it are still the scalar loop's."""
    f = lldiff.jit(gamma_then_divide)
    x = np.linspace(-3, 3, 53) + 0.01
    _compare(lambda: f, [2.5, x], "uniform gamma")
    _compare(lambda: f, [-2.5, x], "uniform gamma of a negative")
    assert ran_spmd(f)
    x[37] = 0.0
    out = np.zeros(53)
    with pytest.raises(ZeroDivisionError):
        lldiff.vectorize(f)(2.5, x, out=out)
    expect = np.zeros(53)
    with pytest.raises(ZeroDivisionError):
        lldiff.vectorize(f, simd=False)(2.5, x, out=expect)
    assert same(out[:37], expect[:37])
    assert lldiff.vectorize(f)(2.5, np.empty(0)).shape == (0,)  # no element: nothing read


def int_ops(a, b):
    if b != 0:
        return a // b + a % b + math.factorial(b % 5) + a ** (b % 3)
    return -1


def test_integer_division_and_tables_in_masked_lanes():
    f = lldiff.jit(int_ops)
    a = np.arange(-40, 40)
    b = (np.arange(80) % 9) - 4  # zero divisors in lanes the branch masks off
    _compare(lambda: f, [a, b], "int ops")
    assert ran_spmd(f)


# --- the SPMD form itself -----------------------------------------------------------------

def test_uniform_values_stay_scalar():
    """v (broadcast) and the series counter k (the same in every active lane) stay scalars;
    z and everything computed from it become vectors; the reverse sweep's trip count differs
    per lane."""
    f = lldiff.jit(poor_besselj)
    spec = f._derived_ir((I64, F64), "grad", (False, True), seeded=(True,))
    lf = spmd_func(spec.module, spec.symbol, (True, False), 8)
    text = print_func(lf)
    assert f"@{spec.symbol}.spmd8(%v: i64, %z: vector<8xf64>)" in text
    assert "-> (vector<8xf64>, vector<8xf64>)" in text
    assert "scf.while (%k = %" in text and ") : (i64, vector<8xf64>, vector<8xf64>, i64)" in text
    assert "(vector<8xi64>, vector<8xf64>, vector<8xf64>, vector<8xi64>)" in text  # results
    assert '"ad.tape.push"(%tape0, %s_1) {tape = 0 : i64} : (!ad.tape, vector<8xf64>)' in text
    assert '"lldiff.factorial"(%v) : (i64) -> i64' in text
    # the reverse sweep runs aligned at its end: the iteration it undoes is the same in
    # every active lane, so -1/k/(k+v) is recomputed with scalar divisions, as forward
    assert '"lldiff.max_lanes"(%n) : (vector<8xi64>) -> i64' in text
    reverse = text[text.index("lldiff.max_lanes"):]
    divisions = [line for line in reverse.splitlines() if "arith.divf" in line]
    assert len(divisions) >= 2 and all(d.endswith(": f64") for d in divisions[:2]), divisions
    func = spec.module[spec.symbol]
    assert varying_values(func, [False, False]) == set()
    assert '"ad.tape"() {tape = 0 : i64} :' in text  # its loop diverges: a stack per lane


def recurrence(x0, theta, h, steps):
    x = x0
    for k in range(steps):
        x = x + h * math.sin(x) * theta
    return x


def test_a_tape_the_lanes_use_together_is_one_stack():
    """A loop whose trip count is uniform runs every lane together: its tape gets
    lanes = "together" (contiguous vector entries), and the gradients are the scalar loop's."""
    f = lldiff.jit(recurrence)
    spec = f._derived_ir((F64, F64, F64, I64), "grad", (True, True, False, False),
                         seeded=(True,))
    text = print_func(spmd_func(spec.module, spec.symbol, (False, False, True, True), 8))
    assert 'lanes = "together"' in text
    x0, theta = np.linspace(-2, 2, 37), np.linspace(0.2, 1.5, 37)
    _compare(lambda: lldiff.value_and_grad(f, argnums=(0, 1)), [x0, theta, 0.01, 300],
             "recurrence")
    _compare(lambda: lldiff.value_and_grad(f, argnums=(0, 1)), [x0, theta, 0.01,
                                                                np.arange(37) % 5],
             "recurrence, steps per lane")


def makes_array(n, x):
    a = np.zeros(n)
    a[0] = x
    return a[0] * 2.0


def test_what_has_no_spmd_form_runs_the_scalar_loop():
    f = lldiff.jit(makes_array)
    spec = f._map_spec((I64, F64))
    with pytest.raises(NotSpmd, match="arrays"):
        spmd_func(spec.module, spec.symbol, (True, False), 8)
    y = lldiff.vectorize(f)(3, np.linspace(0, 1, 50))
    assert same(y, 2 * np.linspace(0, 1, 50)) and not ran_spmd(f)


def test_threads_and_tails():
    f = lldiff.jit(series)
    for n in (1, 7, 8, 9, 17, 5000, 20001):
        x = np.linspace(-20, 20, n)
        a = lldiff.vectorize(f, threads=3)(x, 1e-15)
        b = lldiff.vectorize(f, threads=1, simd=False)(x, 1e-15)
        assert same(a, b), n


# --- pow in lanes (codegen/vmath.py) -------------------------------------------------------

def power(x, y):
    return x ** y


def _pow_inputs(n):
    """(x, y) columns over the regimes where a pow goes wrong: every scale of x and of
    y log x, x next to 1 with huge y, integer and half-integer y, results near overflow and
    underflow, exact powers, and the special values."""
    rng = np.random.default_rng(7)
    k = n // 8
    parts = [
        (rng.uniform(0, 4, k), rng.uniform(-6, 6, k)),
        (np.exp(rng.uniform(-700, 700, k)), rng.uniform(-1, 1, k)),
        (1 + rng.uniform(-1e-3, 1e-3, k), rng.uniform(-3e5, 3e5, k)),
        (1 + rng.uniform(-1e-13, 1e-13, k), rng.uniform(-1e14, 1e14, k)),
        (rng.uniform(0, 10, k), rng.integers(-30, 30, k) + rng.choice([0.0, 0.5], k)),
        (rng.uniform(1.5, 3, k), rng.uniform(640, 1030, k) * rng.choice([-1, 1], k)),
        (2.0 ** rng.integers(-60, 60, k), rng.integers(-8, 8, k).astype(float)),
        (rng.uniform(0, 3, k), np.full(k, 2.0)),
    ]
    specials = [0.0, -0.0, 1.0, -1.0, 2.0, -2.0, 0.5, 5e-324, 2.2e-308, 1e308, math.inf,
                -math.inf, math.nan]
    grid = [(a, b) for a in specials for b in specials + [3.0, -3.0, 0.25, 1e10]]
    x = np.concatenate([p[0] for p in parts] + [np.array([a for a, _ in grid])])
    y = np.concatenate([p[1] for p in parts] + [np.array([b for _, b in grid])])
    return x, y


def _libm_pow():
    import ctypes
    import ctypes.util
    fn = ctypes.CDLL(ctypes.util.find_library("m")).pow
    fn.argtypes, fn.restype = [ctypes.c_double, ctypes.c_double], ctypes.c_double
    return fn


def test_pow_in_lanes_equals_libm_bit_for_bit():
    """`x ** y` on f64 lanes is vmath.py's vector pow, which keeps a lane only where it
    proves libm's result and calls libm for the rest: every element equals the scalar
    loop's and libm's pow called through ctypes, NaN, infinities and signed zeros
    included. Negative bases with a non-integer exponent raise as in Python, in both."""
    x, y = _pow_inputs(80_000)
    f = lldiff.jit(power)
    ok = ((x > 0) | np.isnan(x) | (y == np.round(y)) | np.isinf(y) | np.isinf(x)) & \
        ~((x == 0) & (y < 0))
    got = lldiff.vectorize(f, threads=1)(x[ok], y[ok])
    assert ran_spmd(f)
    want = lldiff.vectorize(f, threads=1, simd=False)(x[ok], y[ok])
    assert same(got, want)
    libm_pow = _libm_pow()
    assert same(got, np.array([libm_pow(a, b) for a, b in zip(x[ok], y[ok])]))
    for a, b in zip(x[~ok], y[~ok]):  # errors: the scalar loop's, the first element's
        _compare(lambda: lldiff.jit(power), (np.array([2.0, a]), np.array([0.5, b])),
                 f"{a} ** {b}")
    _compare(lambda: lldiff.jit(power), (x, y), "pow, all inputs")


def test_pow_in_lanes_inside_derivatives_and_masked_loops():
    """The vector pow in forward and reverse mode (d/dx x^y = y x^(y-1), d/dy = x^y log x)
    and under a mask (lanes that left a loop do not call libm and keep their values)."""
    rng = np.random.default_rng(3)
    x, y = rng.uniform(0.1, 3, 3000), rng.uniform(-4, 4, 3000)
    # lanes whose d/dx takes a second pow (x^y / x unsafe: passes/derivatives.py pow_dx)
    xs, ys = x.copy(), y.copy()
    xs[::97], ys[::97] = 0.0, 1.5
    xs[5::89], ys[5::89] = 1e200, 1.6
    for make in (lambda: lldiff.grad(power, argnums=(0, 1)),
                 lambda: lldiff.jacfwd(power, argnums=(0, 1))):
        _compare(make, (xs, ys), "pow in derivatives")
    for make in (lambda: lldiff.jit(besselj_gamma),
                 lambda: lldiff.grad(besselj_gamma, argnums=(0, 1))):
        _compare(make, (np.abs(y), 8 * x), "pow in a masked loop")


def test_pow_in_lanes_only_where_libm_is_glibc(monkeypatch):
    """vmath.py's pow is proved equal to glibc's pow only: with another C library (the
    engine says so) the SPMD form calls libm's pow lane by lane, with the same results."""
    from lldiff import codegen
    from lldiff.runtime import get_engine
    texts = []
    emit = codegen.emit_spmd_map_module

    def spy(*args, **kwargs):
        text, errors = emit(*args, **kwargs)
        texts.append(text)
        return text, errors

    monkeypatch.setattr(codegen, "emit_spmd_map_module", spy)
    x, y = np.linspace(0.1, 3, 1000), np.linspace(-4, 4, 1000)
    got = {}
    for glibc in (True, False):
        monkeypatch.setattr(type(get_engine()), "glibc_pow", lambda self, g=glibc: g)
        f = lldiff.jit(power)
        got[glibc] = lldiff.vectorize(f, threads=1)(x, y)
        assert ran_spmd(f)
        assert ("lldiff.vpow" in texts[-1]) == glibc
    assert same(got[True], got[False])
    assert same(got[True], np.array([a ** b for a, b in zip(x, y)]))


def besselj_gamma(v, z):
    """The Bessel series for a float order: (z/2)**v with a float v is math.powf; the
    factor (z/2)**(v - v) = 1 puts a pow with varying operands inside the masked loop."""
    k = 0
    s = (z / 2) ** v / math.gamma(v + 1)
    out = s
    while abs(s) > 2.220446049250313e-16:
        k += 1
        s *= -1 / k / (k + v) * (z / 2) ** 2 * (z / 2) ** (v - v)
        out += s
    return out


# --- vector math (fastmath=True) ------------------------------------------------------------

def transcendental(x, y):
    return (math.sin(x), math.cos(x), math.exp(y), math.log(abs(x) + y * y), math.tan(y),
            math.atan2(x, y), x ** y if x > 0 else math.expm1(y), math.tanh(x), math.erf(y))


def test_fastmath_maps_call_glibc_vector_math_within_4_ulp():
    """With fastmath=True the SPMD form calls libmvec (`_ZGVeN8v_sin`, ...) where glibc has
    it: within 4 ulp of the scalar loop's libm (glibc's documented bound for libmvec), equal
    on NaN, infinities and zeros; without fastmath, the scalar libm lane by lane (bit for
    bit, tested above)."""
    from lldiff import codegen
    from lldiff.runtime import get_engine
    vm = get_engine().vector_math(codegen.vector_math_functions())
    if vm is None:
        pytest.skip("no glibc libmvec on this machine")
    f = lldiff.jit(transcendental, fastmath=True)
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.uniform(-20, 20, 4000), [0.0, -0.0, math.inf, -math.inf,
                                                     math.nan, 1e-300, 700.0, -745.0]])
    y = np.concatenate([rng.uniform(-5, 5, 4000), [0.0, math.inf, -0.0, math.nan, 1.0,
                                                   -1e-300, 3.0, 2.0]])
    fast = lldiff.vectorize(f, threads=1)(x, y)
    slow = lldiff.vectorize(f, threads=1, simd=False)(x, y)
    kernel = next(v[0] for k, v in f._maps.items() if k[0] == "simd")
    assert hasattr(kernel, "_lldiff_spmd")
    from lldiff.ir import Module
    spec = f._map_spec((F64, F64))
    text, _ = codegen.emit_spmd_map_module(Module(list(spec.module) + [kernel._lldiff_spmd]),
                                           spec.symbol, kernel._lldiff_spmd.name,
                                           fastmath=True, vector_math=vm)
    assert f"_ZGV{vm[1]}N{vm[0]}v_sin" in text and f"_ZGV{vm[1]}N{vm[0]}vv_atan2" in text
    worst = 0.0
    for a, b in zip(fast, slow):
        special = ~np.isfinite(b) | (b == 0)
        assert same(a[special], b[special])
        a, b = a[~special], b[~special]
        ulps = np.abs(a - b) / np.spacing(np.abs(b))
        worst = max(worst, ulps.max())
    assert worst <= 4, worst


def test_inspect_shows_the_spmd_form(tmp_path):
    f = lldiff.jit(poor_besselj)
    w = lanes()
    text = f.inspect("spmd", 2, np.zeros(3))
    assert text.startswith(f"// the function, {w} lanes\n") and "// its gradient" in text
    assert f"(%v: i64, %z: vector<{w}xf64>)" in text and "lldiff.max_lanes" in text
    src = tmp_path / "m.py"
    src.write_text("def g(x, n):\n    return x * n\n")
    import subprocess
    out = subprocess.run([sys.executable, "-m", "lldiff", "dump", f"{src}:g", "--stage", "spmd",
                          "--sig", "float,int"], capture_output=True, text=True, check=True)
    assert f"(%x: vector<{w}xf64>, %n: vector<{w}xi64>)" in out.stdout
    with pytest.raises(ValueError, match="example arguments"):
        f.inspect("spmd")
