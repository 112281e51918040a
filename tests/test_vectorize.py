"""lldiff.vectorize: elementwise maps equal scalar calls bit for bit, broadcast like numpy,
fill `out=`, give the same results on one thread and several, and raise like scalar calls."""

import math
import os

import numpy as np
import pytest

import lldiff
from lldiff.__main__ import poor_besselj


def two_results(x, n):
    return x * n, n % 3 == 0


def divide(x, n):
    return x / (n - 3)


def makes_array(n):
    return np.zeros(n)


def test_equals_scalar_calls_bit_for_bit_with_broadcasting():
    f = lldiff.jit(poor_besselj)
    vb = lldiff.vectorize(poor_besselj)
    z = np.linspace(0.01, 12.0, 2001)
    y = vb(2, z)
    assert y.dtype == np.float64 and y.shape == z.shape
    assert all(y[i] == f(2, float(z[i])) for i in range(len(z)))
    v = np.array([[0], [1], [3]])
    zz = np.array([0.5, 2.0, 7.5, 11.0])
    grid = vb(v, zz)
    assert grid.shape == (3, 4)
    assert all(grid[i, j] == f(int(v[i, 0]), float(zz[j])) for i in range(3) for j in range(4))
    assert vb(1, 2.5) == f(1, 2.5)  # numbers in, a 0-d result out
    strided = np.linspace(0.1, 5, 40)[::3]
    assert list(vb(0, strided)) == [f(0, float(t)) for t in strided]


def test_several_results_out_and_threads():
    vt = lldiff.vectorize(two_results)
    x = np.linspace(-1, 1, 50_000)
    n = np.arange(50_000)
    a, b = vt(x, n)
    assert a.dtype == np.float64 and b.dtype == np.bool_
    np.testing.assert_array_equal(a, x * n)
    np.testing.assert_array_equal(b, n % 3 == 0)
    out = (np.empty(50_000), np.empty(50_000, dtype=np.bool_))
    got = lldiff.vectorize(two_results, threads=1)(x, n, out=out)
    assert got[0] is out[0] and got[1] is out[1]
    np.testing.assert_array_equal(out[0], a)
    many = lldiff.vectorize(two_results, threads=4)(x, n)
    np.testing.assert_array_equal(many[0], a)
    with pytest.raises(ValueError, match="out="):
        vt(x, n, out=np.empty(50_000))
    with pytest.raises(ValueError, match=r"out\[0\] must be"):
        vt(x, n, out=(np.empty(10), np.empty(10, dtype=np.bool_)))


def test_errors_are_the_scalar_errors():
    vd = lldiff.vectorize(divide)
    with pytest.raises(ZeroDivisionError, match="float division by zero"):
        vd(np.ones(5), np.arange(5))
    with pytest.raises(ValueError, match="do not broadcast"):
        vd(np.ones(3), np.arange(4))
    with pytest.raises(TypeError, match="argument 'x' has dtype complex128"):
        vd(np.ones(3, dtype=complex), np.arange(3))
    with pytest.raises(TypeError, match="returns an array"):
        lldiff.vectorize(makes_array)(np.arange(3))
    with pytest.raises(ValueError, match="threads"):
        lldiff.vectorize(divide, threads=0)


def two_failures(x, n):
    return 1.0 / x + 7 // n


@pytest.fixture(params=["native", "python"])
def pool(request, monkeypatch):
    """Run the workers on the native pool (batch.py _NativePool, POSIX) or on the Python one
    (elsewhere)."""
    from lldiff import batch
    if request.param == "native" and not batch._NATIVE.supported():
        pytest.skip("no native pool here")
    if request.param == "python":
        monkeypatch.setattr(batch._NATIVE, "_libc", False)
    return request.param


def test_the_native_pool_layouts_agree():
    """batch.py repeats the pool's and the job's layouts (it must not import codegen)."""
    from lldiff import batch
    from lldiff.codegen import kernel
    assert batch._POOL_BYTES == kernel.POOL_BYTES and kernel.POOL_JOB + 8 <= kernel.POOL_BYTES
    assert (batch._POOL_WAKE, batch._POOL_DONE) == (kernel.POOL_WAKE, kernel.POOL_DONE)
    assert batch._JOB_SLOTS == kernel.JOB_SLOTS == kernel.J_RESULTS + 1


@pytest.mark.parametrize("first", ["float", "int"])
def test_threads_report_the_first_failing_element(first, pool):
    """Chunks run on several threads (codegen/kernel.py's worker): the error is the first
    failing element's, whichever thread met which failure first, and what precedes it is
    written, as with one thread."""
    n = 200_000
    x, k = np.linspace(1, 2, n), np.ones(n, dtype=np.int64)
    fail_x, fail_k = (30_011, 150_007) if first == "float" else (150_007, 30_011)
    x[fail_x], k[fail_k] = 0.0, 0
    message = "float division by zero" if first == "float" else "integer division"
    head = min(fail_x, fail_k)
    one = np.zeros(n)
    with pytest.raises(ZeroDivisionError, match=message):
        lldiff.vectorize(two_failures, threads=1)(x, k, out=one)
    for threads in (2, 4, 7):
        out = np.zeros(n)
        with pytest.raises(ZeroDivisionError, match=message):
            lldiff.vectorize(two_failures, threads=threads)(x, k, out=out)
        np.testing.assert_array_equal(out[:head], one[:head])
        np.testing.assert_array_equal(out[:head], 1.0 / x[:head] + 7)


def test_callers_on_several_threads_share_the_helper_threads(pool):
    import threading
    vb = lldiff.vectorize(poor_besselj, threads=3)
    z = np.linspace(0.01, 10, 50_000)
    want = lldiff.vectorize(poor_besselj, threads=1)(2, z)
    got = [None] * 4

    def call(j):
        got[j] = vb(2, z + 0.0)
    callers = [threading.Thread(target=call, args=(j,)) for j in range(4)]
    for t in callers:
        t.start()
    for t in callers:
        t.join()
    for g in got:
        np.testing.assert_array_equal(g, want)
    small = z[:9000]  # two chunks: the caller may finish before a helper wakes (offer withdrawn)
    for _ in range(200):
        np.testing.assert_array_equal(vb(2, small), want[:9000])


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_maps_on_threads():
    """The helper threads are not in a forked child: it makes its own (batch.py _NativePool)."""
    vb = lldiff.vectorize(poor_besselj, threads=2)
    z = np.linspace(0.01, 10, 100_000)
    want = vb(2, z)  # the parent's helpers exist
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report, never return into pytest
        ok = 0
        try:
            import threading
            same = np.array_equal(vb(2, z), want) and np.array_equal(vb(2, z), want)
            helpers = [t for t in threading.enumerate() if t.name.startswith("lldiff-map")]
            ok = int(same and len(helpers) >= 1)
        finally:
            os.write(w, bytes([ok]))
            os._exit(0)
    os.close(w)
    got = os.read(r, 1)
    os.close(r)
    os.waitpid(pid, 0)
    assert got == b"\x01"


def test_vectorize_releases_the_gil_while_mapping():
    import threading
    import time
    vb = lldiff.vectorize(poor_besselj, threads=1)
    z = np.linspace(0.01, 10, 1_000_000)
    vb(2, z)
    ticks = []
    done = threading.Event()

    def ticker():
        while not done.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.001)
    t = threading.Thread(target=ticker)
    t.start()
    start = time.perf_counter()
    vb(2, z)
    end = time.perf_counter()
    done.set()
    t.join()
    inside = [x for x in ticks if start < x < end]
    # another Python thread ran while the map was in native code (it would not hold the GIL)
    assert inside, (len(ticks), end - start)


def weighted(x, w, n):
    return math.sin(x) * w * n, x * x


def test_vectorized_gradients_equal_scalar_gradients():
    from scipy.special import jvp as sjvp
    f = lldiff.jit(poor_besselj)
    z = np.linspace(0.1, 9.0, 3001)
    g = lldiff.vectorize(lldiff.grad(f, argnums=1))(2, z)
    scalar = lldiff.grad(f, argnums=1)
    assert all(g[i] == scalar(2, float(z[i])) for i in range(0, len(z), 7))
    assert np.abs(g - sjvp(2, z, 1)).max() < 1e-12
    y, g2 = lldiff.vectorize(lldiff.value_and_grad(f, argnums=1))(2, z)
    np.testing.assert_array_equal(g2, g)
    np.testing.assert_array_equal(y, lldiff.vectorize(f)(2, z))
    y3, g3 = lldiff.vectorize(lldiff.jit_grad(poor_besselj))(2, z)
    np.testing.assert_array_equal(g3, g)
    # several arguments, argnums order, has_aux
    x, w = np.linspace(-1, 1, 101), np.linspace(0, 2, 101)
    gw, gx = lldiff.vectorize(lldiff.grad(weighted, argnums=(1, 0), has_aux=True))(x, w, 3)[0]
    np.testing.assert_allclose(gx, np.cos(x) * w * 3, rtol=1e-15)
    np.testing.assert_allclose(gw, np.sin(x) * 3, rtol=1e-15)
    with pytest.raises(TypeError, match="not a float"):
        lldiff.vectorize(lldiff.grad(weighted, argnums=2, has_aux=True))(x, w, 3)


def test_vectorized_forward_mode_equals_scalar_jacfwd():
    from scipy.special import jvp as sjvp
    f = lldiff.jit(poor_besselj)
    z = np.linspace(0.1, 9.0, 3001)
    d = lldiff.vectorize(lldiff.jacfwd(f, argnums=1))(2, z)
    scalar = lldiff.jacfwd(f, argnums=1)
    assert d.shape == z.shape
    assert all(d[i] == scalar(2, float(z[i])) for i in range(0, len(z), 7))
    assert np.abs(d - sjvp(2, z, 1)).max() < 1e-12
    np.testing.assert_array_equal(
        lldiff.vectorize(lldiff.jacfwd(f, argnums=1), threads=3)(2, z), d)
    # two argnums, two results (one not differentiable), out=
    x, w = np.linspace(-1, 1, 101), np.linspace(0, 2, 101)
    (dx, dw), (ex, ew) = lldiff.vectorize(lldiff.jacfwd(weighted, argnums=(0, 1)))(x, w, 3)
    np.testing.assert_allclose(dx, np.cos(x) * w * 3, rtol=1e-15)
    np.testing.assert_array_equal(dw, np.sin(x) * 3)
    np.testing.assert_array_equal(ex, 2 * x)
    np.testing.assert_array_equal(ew, np.zeros_like(x))
    one = lldiff.jacfwd(weighted, argnums=(0, 1))
    assert all(one(float(x[i]), float(w[i]), 3) == ((dx[i], dw[i]), (ex[i], ew[i]))
               for i in range(0, 101, 10))
    out = tuple(np.empty(101) for _ in range(6))  # y0, y1, then 2 tangents per y
    lldiff.vectorize(lldiff.jacfwd(weighted, argnums=(0, 1)))(x, w, 3, out=out)
    np.testing.assert_array_equal(out[2], dx)
    with pytest.raises(TypeError, match="not a float"):
        lldiff.vectorize(lldiff.jacfwd(weighted, argnums=2))(x, w, 3)


def test_progress_bar_only_when_asked(capsys):
    z = np.linspace(0.1, 5, 50_000)
    lldiff.vectorize(poor_besselj)(1, z)
    assert capsys.readouterr().err == ""
    y = lldiff.vectorize(poor_besselj, progress=True)(1, z)
    err = capsys.readouterr().err
    assert "vectorize(poor_besselj): 100%" in err and "50000/50000" in err
    np.testing.assert_array_equal(y, lldiff.vectorize(poor_besselj)(1, z))


def test_compile_ahead_with_progress(capsys):
    f = lldiff.jit(two_results)
    assert f.compile([(float, int), (1, 2)]) is f
    assert capsys.readouterr().err == ""
    assert len(f.signatures) == 2
    g = lldiff.jit_grad(poor_besselj)
    g.compile([(2, float), (2, 0.5)], progress=True)
    err = capsys.readouterr().err
    assert "compile poor_besselj: 100%" in err and "2/2" in err
    assert g(2, 0.5) == lldiff.value_and_grad(poor_besselj, argnums=1)(2, 0.5)
