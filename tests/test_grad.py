"""Reverse mode through the public API: gradients against closed forms, scipy and finite
differences; the tape's contents in the IR; memory, threads and errors.

The whole corpus is checked in test_vjp.py (reverse == transposed forward to 1e-12) and
forward mode against 50-digit finite differences in test_jvp_corpus.py.
"""

import math
import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import lldiff
from lldiff.__main__ import poor_besselj

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_jvp import _series_derivative_magnitude  # noqa: E402


# --- functions with closed-form gradients -------------------------------------------------

def with_break(x, n):
    s = 0.0
    for i in range(n):
        if s > 10.0:
            break
        s += x * i
    return s


def with_early_return(x, n):
    s = x
    for i in range(n):
        s = s * x
        if s > 100.0:
            return s
    return s + 1.0


def triangle(x, y, n):
    # sum_{i<n} sum_{j<i} x^2 y + j x  (inner bound depends on the outer index)
    s = 0.0
    for i in range(n):
        for j in range(i):
            s += x * x * y + j * x
    return s


def if_in_loop(x, n):
    s = 0.0
    for i in range(n):
        if i % 2 == 0:
            s += math.sin(x * i)
        else:
            s -= x * x
    return s


def babylonian_sqrt(a):
    # converges in a data-dependent number of steps; d/da -> 1/(2 sqrt(a))
    x = a if a > 1.0 else 1.0
    while abs(x * x - a) > 1e-15 * a:
        x = 0.5 * (x + a / x)
    return x


@lldiff.jit
def helper(x, y):
    return x * math.exp(y)


def calls_in_loop(x, y, n):
    s = 0.0
    for i in range(n):
        s += helper(x, y * i)
    return s


def nested_while(x, n):
    # an inner while with a data-dependent trip count per outer iteration: its count goes on
    # the outer loop's tape
    s = 0.0
    for i in range(n):
        t = x
        while t < 10.0 * (i + 1):
            t = t * 1.5
        s += t
    return s


def _nested_while_grad(x, n):
    total = 0.0
    for i in range(n):
        t, m = x, 0
        while t < 10.0 * (i + 1):
            t, m = t * 1.5, m + 1
        total += 1.5 ** m
    return total


def chain(x0, theta, h, steps):
    x = x0
    for k in range(steps):
        x = x + h * math.sin(x) * theta
    return x


def long_while(x, n):
    s = 0.0
    k = 0
    while k < n:
        s = s + 1e-7 * math.sin(s + x)
        k += 1
    return s


CLOSED_FORMS = [
    (with_break, (1.5, 10), lambda x, n: (10.0,)),  # breaks at i = 5: s = 10 x
    (with_break, (0.1, 10), lambda x, n: (sum(range(10)),)),  # never breaks
    (with_early_return, (1.5, 10), lambda x, n: (11 * x ** 10,)),
    (with_early_return, (2.0, 10), lambda x, n: (7 * x ** 6,)),  # 2^7 = 128 > 100
    (triangle, (1.5, -0.5, 7), lambda x, y, n: (
        sum(i * 2 * x * y + sum(range(i)) for i in range(n)), sum(i * x * x for i in range(n)))),
    (if_in_loop, (0.7, 9), lambda x, n: (
        sum(i * math.cos(x * i) for i in range(0, n, 2)) - 2 * x * len(range(1, n, 2)),)),
    (babylonian_sqrt, (2.0,), lambda a: (0.5 / math.sqrt(a),)),
    (babylonian_sqrt, (0.3,), lambda a: (0.5 / math.sqrt(a),)),
    (babylonian_sqrt, (12345.0,), lambda a: (0.5 / math.sqrt(a),)),
    (nested_while, (0.7, 12), lambda x, n: (_nested_while_grad(x, n),)),
    (calls_in_loop, (0.5, 0.3, 5), lambda x, y, n: (
        sum(math.exp(y * i) for i in range(n)), sum(x * i * math.exp(y * i) for i in range(n)))),
]


@pytest.mark.parametrize("fn,args,ref", CLOSED_FORMS,
                         ids=[f"{c[0].__name__}{c[1]}" for c in CLOSED_FORMS])
def test_gradient_against_closed_form(fn, args, ref):
    nums = tuple(i for i, a in enumerate(args) if isinstance(a, float))
    g = lldiff.grad(fn, argnums=nums)(*args)
    want = ref(*args)
    for got, w in zip(g, want):
        assert abs(got - w) <= 1e-12 * max(1.0, abs(w)), (g, want)
    value, g2 = lldiff.value_and_grad(fn, argnums=nums)(*args)
    assert value == fn(*args) or math.isclose(value, fn(*args), rel_tol=1e-15)
    assert g2 == g


def test_bessel_gradient_at_500_points_against_scipy():
    """Reverse-mode d/dz of the seed's series against scipy.special.jvp(v, z, 1), with the
    series' own rounding bound (see test_jvp's forward-mode twin)."""
    from scipy.special import jvp as sjvp
    rng = np.random.default_rng(7)
    vs = rng.integers(0, 6, 500)
    zs = rng.uniform(0.0, 20.0, 500)
    zs[zs == 0] = 0.1
    g = lldiff.jit_grad(poor_besselj)
    dz = lldiff.grad(poor_besselj, argnums=1)
    primal = lldiff.jit(poor_besselj)
    worst_small_z = 0.0
    for v, z in zip(vs.tolist(), zs.tolist()):
        value, grad = g(v, z)
        ref = float(sjvp(v, z, 1))
        bound = 4 * 2.2e-16 * _series_derivative_magnitude(v, z)
        assert abs(grad - ref) <= 1e-12 + bound, (v, z, grad, ref, bound)
        assert value == primal(v, z)  # the augmented forward sweep computes the primal
        assert dz(v, z) == grad
        if z < 10:
            worst_small_z = max(worst_small_z, abs(grad - ref))
    assert worst_small_z <= 1e-12


def test_chain_of_100000_steps_against_finite_differences():
    K, h = 100_000, 1e-4
    x0, theta = 0.3, 0.8
    f = lldiff.jit(chain)
    gx0, gth = lldiff.grad(f, argnums=(0, 1))(x0, theta, h, K)
    eps = 1e-6
    fd_x0 = (f(x0 + eps, theta, h, K) - f(x0 - eps, theta, h, K)) / (2 * eps)
    fd_th = (f(x0, theta + eps, h, K) - f(x0, theta - eps, h, K)) / (2 * eps)
    assert abs(gx0 - fd_x0) <= 1e-7 * max(1.0, abs(fd_x0)), (gx0, fd_x0)
    assert abs(gth - fd_th) <= 1e-7 * max(1.0, abs(fd_th)), (gth, fd_th)
    # and against forward mode (no tape) to rounding
    _, tx = lldiff.jvp(f, (x0, theta, h, K), (1.0, 0.0, 0.0, None))
    assert abs(gx0 - tx) <= 1e-12 * abs(tx)


def _tape_pushes(ir):
    return [line.strip() for line in ir.splitlines() if '"ad.tape.push"' in line]


def test_chain_tape_holds_8_bytes_per_step():
    f = lldiff.jit(chain)
    ir = f.inspect("vjp", 0.3, 0.8, 1e-4, 10)
    after = ir.split("// after tape materialization")[1]
    pushes = _tape_pushes(after)
    assert len(pushes) == 1 and "(!ad.tape, f64) -> ()" in pushes[0], pushes
    # a top-level for loop: a buffer reserved for trip count x 8 bytes before the loop
    assert '"ad.tape"(%bytes)' in after
    lines = after.splitlines()
    k = next(i for i, l in enumerate(lines) if '"ad.tape"(%bytes)' in l)
    assert "arith.constant 8 : i64" in "\n".join(lines[k - 3:k]), lines[k - 8:k + 1]


def test_bessel_tape_is_one_f64_per_iteration_and_the_count(monkeypatch, capsys):
    monkeypatch.setenv("LLDIFF_EXPLAIN", "cache")
    f = lldiff.jit(poor_besselj)
    ir = f.inspect("vjp", 2, 0.5)
    before, after = ir.split("// after tape materialization")
    # abstract: one push of s in the while body, one pop in the reverse loop
    assert before.count('"ad.push"') == 1 and before.count('"ad.pop"') == 1
    assert '"ad.push"(%s_1)' in before
    # the while loop counts its iterations in one extra i64 carry, not on the tape
    while_head = next(l for l in before.splitlines() if "scf.while" in l)
    assert while_head.rstrip().endswith("-> (i64, f64, f64, i64) {"), while_head
    pushes = _tape_pushes(after)
    assert len(pushes) == 1 and "f64" in pushes[0]
    assert '"ad.tape"()' in after and '"ad.tape.free"' in after  # a stack, freed
    err = capsys.readouterr().err
    assert "8 bytes per iteration" in err
    assert "%s_1: f64 cached" in err
    assert "%k_1: i64 free" in err


def test_integers_are_never_cached_in_the_corpus():
    """Across the corpus the tapes hold floats and branch bits (i1), never an i64: counters
    and induction variables are rebuilt from the iteration number."""
    import types
    import corpus
    ns = dict(vars(corpus))
    jitted = {c.fn.__name__: lldiff.jit(types.FunctionType(
        c.fn.__code__, ns, c.fn.__name__, c.fn.__defaults__, c.fn.__closure__))
        for c in corpus.CASES}
    ns.update(jitted)
    kinds = set()
    for case in corpus.CASES:
        args = case.inputs[0]
        if not any(isinstance(a, float) for a in args):
            continue
        after = jitted[case.fn.__name__].inspect("vjp", *args).split("// after tape")[1]
        kinds |= {line.split("(!ad.tape, ")[1].split(")")[0] for line in after.splitlines()
                  if '"ad.tape.push"' in line}
    assert kinds == {"f64", "i1"}, kinds
    # a while loop nested in a for loop: its trip count is the one i64 on the outer tape, and
    # nothing else is stored (t * 1.5 needs no primal value in reverse)
    after = lldiff.jit(nested_while).inspect("vjp", 0.7, 12).split("// after tape")[1]
    pushes = [line for line in after.splitlines() if '"ad.tape.push"' in line]
    assert [p.split("(!ad.tape, ")[1].split(")")[0] for p in pushes] == ["i64"], pushes


def test_inspect_vjp_and_cli_dump(tmp_path):
    src = tmp_path / "m.py"
    src.write_text(textwrap.dedent("""
        def f(x, n):
            s = 0.0
            for i in range(n):
                s = s * x + 1.0
            return s
    """))
    out = subprocess.run([sys.executable, "-m", "lldiff", "dump", f"{src}:f", "--sig",
                          "float,int", "--stage", "vjp"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "// reverse mode before tape materialization" in out.stdout
    assert '"ad.push"' in out.stdout and '"ad.tape.push"' in out.stdout


# --- API ----------------------------------------------------------------------------------

def two_out(x, y):
    return x * y, math.sin(x) + y


def test_jacrev_equals_jacfwd():
    for argnums in (0, 1, (0, 1), (1, 0)):
        r = lldiff.jacrev(two_out, argnums)(0.7, -1.3)
        f = lldiff.jacfwd(two_out, argnums)(0.7, -1.3)
        flat = [np.ravel(row) for row in (r, f)]
        assert np.allclose(flat[0], flat[1], rtol=1e-15, atol=0), (argnums, r, f)
    assert lldiff.jacrev(two_out, (1, 0))(0.7, -1.3)[0] == (0.7, -1.3)


def with_aux(x, n):
    return x * x * n, n + 1


def square(x):
    return x * x


def double_int(n):
    return n * 2.0


def test_has_aux():
    assert lldiff.grad(with_aux, has_aux=True)(3.0, 2) == (12.0, 3)
    assert lldiff.value_and_grad(with_aux, has_aux=True)(3.0, 2) == ((18.0, 3), 12.0)
    with pytest.raises(TypeError, match="has_aux"):
        lldiff.grad(square, has_aux=True)(1.0)


def scaled_sine(x, y):
    return math.sin(x) * y


def test_repeated_calls_on_numbers_take_the_native_entry_and_still_check_types():
    """After a first call on numbers, grad and value_and_grad call the native entry for calls
    with the same argument types (ad.py's `direct`); other types take the checked path."""
    g = lldiff.grad(scaled_sine)
    vg = lldiff.value_and_grad(scaled_sine, argnums=1)
    for x, y in ((0.3, 2.0), (1.1, -0.5), (2.0, 3.0)):
        assert g(x, y) == pytest.approx(math.cos(x) * y, rel=1e-15)
        v, dy = vg(x, y)
        assert v == pytest.approx(math.sin(x) * y, rel=1e-15)
        assert dy == pytest.approx(math.sin(x), rel=1e-15)
    assert g(0.3, 2) == pytest.approx(math.cos(0.3) * 2, rel=1e-15)  # (float, int): compiles
    assert vg(0.3, np.float64(2.0))[1] == pytest.approx(math.sin(0.3), rel=1e-15)
    with pytest.raises(TypeError, match="argument 'x' \\(argnums 0\\) is an int"):
        g(1, 2.0)
    with pytest.raises(TypeError, match="argument 'y' \\(argnums 1\\) is an int"):
        vg(0.3, 2)
    assert g(y=2.0, x=0.3) == pytest.approx(math.cos(0.3) * 2, rel=1e-15)  # keywords: bound


def test_grad_errors_name_the_argument():
    with pytest.raises(TypeError, match="argument 'n' \\(argnums 1\\) is an int"):
        lldiff.grad(with_aux, argnums=1, has_aux=True)(3.0, 2)
    with pytest.raises(TypeError, match="must return one float"):
        lldiff.grad(two_out)(1.0, 2.0)
    with pytest.raises(ValueError, match="out of range"):
        lldiff.grad(two_out, argnums=5)(1.0, 2.0)
    with pytest.raises(TypeError, match="argnums"):
        lldiff.grad(two_out, argnums="x")


def test_vjp_pullback():
    y, pullback = lldiff.vjp(two_out, 0.7, -1.3)
    assert y == two_out(0.7, -1.3)
    assert pullback((1.0, 0.0)) == (-1.3, 0.7)
    assert pullback((0.0, 1.0)) == pytest.approx((math.cos(0.7), 1.0), rel=1e-15)
    assert pullback((1.0, None)) == (-1.3, 0.7)
    y, pullback = lldiff.vjp(with_aux, 3.0, 2)
    assert pullback((1.0, None)) == (12.0, None)
    with pytest.raises(TypeError, match="must be None or 0"):
        pullback((1.0, 1.0))
    with pytest.raises(ValueError, match="shape"):
        pullback(1.0)


def test_jit_grad_one_call_and_shapes():
    @lldiff.jit_grad
    def f(x, y, n):
        return x * y * n + math.sin(x)

    value, grad = f(1.0, 2.0, 3)
    assert value == 6.0 + math.sin(1.0)
    assert grad == (6.0 + math.cos(1.0), 3.0)
    assert type(f).__call__ is not type(f).__mro__[1].__call__  # the native fast path
    g = lldiff.jit_grad(square)
    assert g(3.0) == (9.0, 6.0)
    with pytest.raises(TypeError, match="has none"):
        lldiff.jit_grad(double_int)(3)


def test_jit_grad_cannot_be_called_from_compiled_code():
    g = lldiff.jit_grad(square)

    def caller(x):
        return g(x)
    with pytest.raises(lldiff.CompileError, match="jit_grad"):
        lldiff.jit(caller)(1.0)


# --- memory and threads -------------------------------------------------------------------

def _rss_mb():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc")
def test_a_million_gradient_calls_keep_rss_flat():
    g = lldiff.jit_grad(poor_besselj)
    for _ in range(10_000):
        g(2, 7.5)
    before = _rss_mb()
    for _ in range(1_000_000):
        g(2, 7.5)
    assert abs(_rss_mb() - before) <= 5.0


def raises_late(x, n):
    s = 0.0
    k = 0
    while k < n:
        s = s + math.sin(s + x) * 1e-3
        k += 1
        if k == n - 1:
            s += 1 // (k - k)
    return s


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc")
def test_an_error_after_the_tape_spilled_frees_it():
    g = lldiff.grad(raises_late)
    with pytest.raises(ZeroDivisionError):
        g(0.3, 100_000)  # 800 KB of tape on the heap when it raises
    before = _rss_mb()
    for _ in range(200):
        with pytest.raises(ZeroDivisionError):
            g(0.3, 100_000)
    assert abs(_rss_mb() - before) <= 5.0


def test_ten_million_iteration_while_spills_the_tape_to_the_heap():
    n = 10_000_000
    f = lldiff.jit(long_while)
    value, grad = lldiff.value_and_grad(f)(0.3, n)
    _, tangent = lldiff.jvp(f, (0.3, n), (1.0, None))
    assert abs(grad - tangent) <= 1e-12 * abs(tangent)
    # the same loop run shorter must agree with finite differences
    m = 1000
    fd = (f(0.3 + 1e-6, m) - f(0.3 - 1e-6, m)) / 2e-6
    assert abs(lldiff.grad(f)(0.3, m) - fd) <= 1e-8 * abs(fd)


def test_failed_tape_allocation_raises_memory_error():
    code = textwrap.dedent(f"""
        import resource, sys
        sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r})
        import lldiff
        from test_grad import long_while
        g = lldiff.grad(long_while)
        g(0.3, 1000)                       # compile first
        with open("/proc/self/statm") as fh:
            vm = int(fh.read().split()[0]) * 4096
        resource.setrlimit(resource.RLIMIT_AS, (vm + 200 * 2**20, resource.RLIM_INFINITY))
        try:
            g(0.3, 100_000_000)            # 800 MB of tape
        except MemoryError as e:
            print("MemoryError:", e)
        print(g(0.3, 1000) == g(0.3, 1000))  # still usable
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert "MemoryError: out of memory for the reverse-mode tape" in out.stdout
    assert out.stdout.strip().endswith("True")


def test_two_threads_share_one_gradient():
    g = lldiff.jit_grad(poor_besselj)
    points = [(v, 0.05 + 0.01 * i) for i in range(2000) for v in (1, 3)]
    want = [g(v, z) for v, z in points]
    results = [None, None]

    def work(k):
        results[k] = [g(v, z) for v, z in points]

    threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results[0] == want and results[1] == want


def inv_trig(x):
    return math.asin(x), math.acos(x), math.atan(x)


def test_unseeded_outputs_get_no_adjoint_code():
    """At x = -1 asin' and acos' are infinite: jacrev's atan row must not be 0 * inf = NaN."""
    assert lldiff.jacrev(inv_trig)(-1.0) == lldiff.jacfwd(inv_trig)(-1.0) == (
        math.inf, -math.inf, 0.5)
    _, pullback = lldiff.vjp(inv_trig, -1.0)
    assert pullback((None, None, 1.0)) == (0.5,)
    assert math.isnan(pullback((0.0, 0.0, 1.0))[0])  # a zero cotangent is multiplied through
