"""numpy arrays as arguments: reads, writes, shapes, layouts, dtypes, errors, and the first
derivatives through code that reads arrays (issue 5, first step).

Each function is compared with plain Python/numpy running the same source, and the IR
interpreter with the native code.
"""

import ctypes
import math
import re
import shutil
import subprocess

import numpy as np
import pytest

import lldiff


def norm(x):
    s = 0.0
    for i in range(len(x)):
        s += x[i] * x[i]
    return math.sqrt(s)


def scale_in_place(x, c):
    for i in range(x.shape[0]):
        x[i] *= c
    return x[-1]


def mat_sum(A, v):
    s = 0.0
    for i in range(A.shape[0]):
        for j in range(A.shape[1]):
            s += A[i, j] * v[j] + A[i][j]
    return s


def negative_indices(x, k):
    return x[-1] + x[-2] * 10.0 + x[k] * 100.0


def cumsum_in_place(x):
    for i in range(1, len(x)):
        x[i] += x[i - 1]
    return x[len(x) - 1]


def fill_ints(a, n):
    for i in range(a.shape[0]):
        a[i] = n * i
    return a[a.shape[0] - 1]


def store_float_into_int(a, x):
    a[0] = x
    return a[0]


def triangular(A):
    s = 0.0
    for i in range(A.shape[0]):
        for j in range(i + 1):
            s += A[i, j]
    return s


@lldiff.jit
def write_row(A, i, value):
    for j in range(A.shape[1]):
        A[i, j] = value
    return 0


def caller_writes_through_helper(A):
    write_row(A, 1, 7.5)
    return A[1, 0] + A[0, 0]


def wsum(x, c):
    s = 0.0
    for i in range(len(x)):
        s += math.sin(c * x[i])
    return s


def writes_active(x, c):
    x[0] = c * 2.0
    return x[0]


def local_arrays(n, c):
    a = np.zeros(n)
    b = np.ones((n, 2), dtype=np.int64)
    e = np.empty(n, dtype=np.float32)
    for i in range(n):
        a[i] = c * i
        e[i] = a[i] + b[i, 1]
    s = 0.0
    for i in range(n):
        s += e[i] + b[i, 0] + a[-1 - i]
    return s


def prefix_sums_local(x):
    n = len(x)
    p = np.zeros(n + 1)
    for i in range(n):
        p[i + 1] = p[i] + x[i]
    return p[n] - p[n // 2]


CASES = [
    (norm, lambda: (np.arange(5.0),)),
    (norm, lambda: (np.arange(10.0)[::3],)),                      # strided
    (norm, lambda: (np.arange(5, dtype=np.float32),)),
    (norm, lambda: (np.arange(5, dtype=np.int64),)),
    (scale_in_place, lambda: (np.arange(4.0), 2.5)),
    (mat_sum, lambda: (np.arange(12.0).reshape(3, 4), np.linspace(0, 1, 4))),
    (mat_sum, lambda: (np.asfortranarray(np.arange(12.0).reshape(3, 4)), np.ones(4))),
    (mat_sum, lambda: (np.arange(24.0).reshape(4, 6)[::2, 1::2], np.ones(3))),
    (negative_indices, lambda: (np.arange(6.0), -3)),
    (cumsum_in_place, lambda: (np.linspace(0, 1, 9),)),
    (cumsum_in_place, lambda: (np.linspace(0, 1, 9, dtype=np.float32),)),
    (fill_ints, lambda: (np.zeros(5, dtype=np.int64), 3)),
    (store_float_into_int, lambda: (np.zeros(2, dtype=np.int64), 2.75)),
    (triangular, lambda: (np.arange(16.0).reshape(4, 4),)),
    (caller_writes_through_helper, lambda: (np.zeros((3, 2)),)),
    (local_arrays, lambda: (6, 0.5)),
    (prefix_sums_local, lambda: (np.linspace(0, 1, 11),)),
]


@pytest.mark.parametrize("fn,make", CASES, ids=[f"{c[0].__name__}{k}" for k, c in
                                                 enumerate(CASES)])
def test_array_functions_match_python(fn, make):
    py_args, native_args, interp_args = make(), make(), make()
    want = fn(*py_args)
    f = lldiff.jit(fn)
    got = f(*native_args)
    assert got == pytest.approx(want, rel=1e-15, abs=0) or (
        isinstance(want, np.floating) and got == pytest.approx(float(want), rel=1e-6))
    for a, b in zip(py_args, native_args):  # the same writes
        if isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, b)
    assert f.interpret(*interp_args) == got
    for a, b in zip(native_args, interp_args):
        if isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, b)


def returns_argument(x):
    return x


@lldiff.jit
def squares(x):
    out = np.empty(len(x))
    for i in range(len(x)):
        out[i] = x[i] * x[i]
    return out


def squares_and_table(x):
    a = squares(x)          # the callee's array now belongs to this call
    b = np.zeros((2, len(x)), dtype=np.int64)
    for i in range(len(x)):
        b[0, i] = i
        b[1, i] = 2 * i
    return a, b, a[len(x) - 1]


def discards_callee_array(x):
    a = squares(x)
    return a[0] + 1.0


def test_returned_arrays_are_numpy_arrays_owning_their_memory():
    import gc
    import os
    x = np.arange(4.0)
    a, b, last = lldiff.jit(squares_and_table)(x)
    np.testing.assert_array_equal(a, x * x)
    np.testing.assert_array_equal(b, [[0, 1, 2, 3], [0, 2, 4, 6]])
    assert b.dtype == np.int64 and a.flags.c_contiguous and a.flags.writeable
    assert last == 9.0
    got = lldiff.jit(squares_and_table).interpret(x)
    np.testing.assert_array_equal(got[0], a)

    def rss():
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    y = np.arange(100_000.0)
    d = lldiff.jit(discards_callee_array)
    squares(y), d(y)
    before = rss()
    for _ in range(2000):  # 800 KB a call, returned to Python or freed by the caller
        z = squares(y)
        d(y)
    view = z[::2]
    del z
    gc.collect()
    assert view[3] == 36.0  # a view keeps the block alive
    del view
    gc.collect()
    assert abs(rss() - before) <= 5.0
    with pytest.raises(lldiff.CompileError, match="returning an array the function did not "
                                                  "make"):
        lldiff.jit(returns_argument)(x)


@pytest.mark.skipif(not __import__("os").path.exists("/proc/self/statm"), reason="needs /proc")
def test_local_arrays_are_freed_when_the_call_returns_or_raises():
    import os

    def rss():
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    f = lldiff.jit(local_arrays)
    f(10_000, 1.0)
    before = rss()
    for _ in range(3000):
        f(10_000, 1.0)   # 3 arrays, 280 KB a call
    assert abs(rss() - before) <= 5.0
    with pytest.raises(ValueError, match="negative dimensions are not allowed"):
        f(-1, 1.0)
    g = lldiff.jit(out_of_bounds_after_alloc, boundscheck=True)
    for _ in range(2000):
        with pytest.raises(IndexError):
            g(10_000)
    assert abs(rss() - before) <= 5.0


def out_of_bounds_after_alloc(n):
    a = np.ones(n)
    return a[n]


def test_float32_arrays_compute_in_f64_and_round_on_store():
    x = np.array([1.0, 1e-8, 1e-8], dtype=np.float32)
    f = lldiff.jit(cumsum_in_place)
    f(x)
    # x[1] = f32(1 + 1e-8) = 1: the sum is rounded to float32 when it is stored
    assert x.dtype == np.float32 and x[1] == np.float32(1.0)


def test_layouts_and_dtypes_get_their_own_specializations():
    f = lldiff.jit(mat_sum)
    A = np.arange(12.0).reshape(3, 4)
    f(A, np.ones(4))
    f(np.asfortranarray(A), np.ones(4))
    names = sorted(str(sig[0]) for sig in f.signatures)
    assert names == ["memref<?x?xf64, strided<[?, ?], offset: ?>>", "memref<?x?xf64>"]


def test_bad_arguments_raise_clear_errors():
    f = lldiff.jit(norm)
    with pytest.raises(TypeError, match="argument 'x' is a list; pass a numpy array"):
        f([1.0, 2.0])
    with pytest.raises(ValueError, match="argument 'x' has 3 dimensions"):
        f(np.zeros((2, 2, 2)))
    with pytest.raises(TypeError, match="argument 'x' has dtype complex128"):
        f(np.zeros(3, dtype=np.complex128))
    with pytest.raises(TypeError, match="argument 'x' has dtype int32"):
        f(np.zeros(3, dtype=np.int32))
    with pytest.raises(TypeError, match="non-native byte order"):
        f(np.zeros(3, dtype=">f8"))
    with pytest.raises(TypeError, match="ndarray subclass"):
        f(np.ma.masked_array(np.zeros(3)))
    g = lldiff.jit(scale_in_place)
    ro = np.arange(3.0)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="argument 'x' is read-only, and scale_in_place "
                                         "writes to it"):
        g(ro, 2.0)
    assert f(ro) == norm(ro)  # reading a read-only array is fine
    with pytest.raises(ValueError, match="read-only"):
        lldiff.grad(scale_in_place, argnums=1)(ro, 2.0)
    with pytest.raises(ValueError, match="read-only"):
        lldiff.jvp(scale_in_place, (ro, 2.0), (None, 1.0))
    h = lldiff.jit(caller_writes_through_helper)
    ro2 = np.zeros((3, 2))
    ro2.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        h(ro2)


def out_of_bounds(x, i):
    return x[i]


def test_boundscheck(monkeypatch):
    x = np.arange(4.0)
    f = lldiff.jit(out_of_bounds, boundscheck=True)
    assert f(x, 3) == 3.0 and f(x, -4) == 0.0
    with pytest.raises(IndexError, match="index out of bounds for axis 0"):
        f(x, 4)
    with pytest.raises(IndexError):
        f(x, -5)
    monkeypatch.setenv("LLDIFF_BOUNDSCHECK", "1")
    g = lldiff.jit(out_of_bounds)
    with pytest.raises(IndexError):
        g(x, 10)
    monkeypatch.delenv("LLDIFF_BOUNDSCHECK")
    assert "raise_if" not in lldiff.jit(out_of_bounds).inspect("ir", x, 1)


def slicing(x):
    return x[1:3]


def row_view(A):
    return A[0]


def array_arithmetic(x):
    return x * 2.0


def float_index(x):
    return x[1.0]


@pytest.mark.parametrize("fn,args,match", [
    (slicing, (np.zeros(4),), "slicing"),
    (row_view, (np.zeros((2, 2)),), "1 indices into a 2-D array"),
    (array_arithmetic, (np.zeros(4),), "an array used as a value"),
    (float_index, (np.zeros(4),), "array indices must be integers"),
])
def test_unsupported_array_code_is_a_compile_error(fn, args, match):
    with pytest.raises(lldiff.CompileError, match=match) as e:
        lldiff.jit(fn)(*args)
    assert e.value.filename.endswith("test_arrays.py")


def test_numpy_struct_offsets_the_entry_point_reads():
    """The entry point reads ndarray and dtype fields at fixed offsets (codegen/abi.py); this
    fails loudly if a numpy release moves them."""
    from lldiff.codegen import abi
    x = np.arange(12.0).reshape(3, 4)[:, ::2]
    a = id(x)
    assert ctypes.c_void_p.from_address(a + abi._ND_DATA).value == x.ctypes.data
    assert ctypes.c_int.from_address(a + abi._ND_NDIM).value == 2
    dims = ctypes.c_void_p.from_address(a + abi._ND_DIMS).value
    strides = ctypes.c_void_p.from_address(a + abi._ND_STRIDES).value
    assert [ctypes.c_int64.from_address(dims + 8 * k).value for k in range(2)] == [3, 2]
    assert [ctypes.c_int64.from_address(strides + 8 * k).value for k in range(2)] == [32, 16]
    assert ctypes.c_void_p.from_address(a + abi._ND_DESCR).value == id(x.dtype)
    flags = ctypes.c_int.from_address(a + abi._ND_FLAGS).value
    assert flags & abi._WRITEABLE and flags & abi._ALIGNED and not flags & abi._C_CONTIGUOUS
    for dt, elem in (("f8", "f64"), ("f4", "f32"), ("i8", "i64")):
        d = np.dtype(dt)
        assert ctypes.c_int.from_address(id(d) + abi._DESCR_TYPE_NUM).value == d.num
        assert d.num in abi._TYPE_NUMS[elem]
    assert np.dtype(np.longlong).num in abi._TYPE_NUMS["i64"]
    assert chr(ctypes.c_char.from_address(id(np.dtype(">f8")) + abi._DESCR_BYTEORDER)
               .value[0]) == ">"


def test_derivatives_through_array_reads():
    x = np.linspace(0, 1, 7)
    ref = sum(xi * math.cos(0.7 * xi) for xi in x)
    f = lldiff.jit(wsum)
    assert lldiff.grad(f, argnums=1)(x, 0.7) == pytest.approx(ref, rel=1e-14)
    assert lldiff.jvp(f, (x, 0.7), (None, 1.0))[1] == pytest.approx(ref, rel=1e-14)
    # nothing is written, so the reverse sweep reads x[i] again: no tape at all
    after = f.inspect("vjp", x, 0.7).split("// after tape")[1]
    assert '"ad.tape' not in after
    primal_loads = [l for l in after.splitlines() if '"lldiff.load"' in l and "shadow" not in l]
    assert len(primal_loads) == 2  # one in the forward sweep, one again in the reverse


def test_storing_a_differentiated_value_into_an_argument_not_differentiated():
    # x is not differentiated, but it comes to hold c * 2: both modes give it a shadow
    assert lldiff.grad(writes_active, argnums=1)(np.zeros(2), 0.7) == 2.0
    assert lldiff.jvp(writes_active, (np.zeros(2), 0.7), (None, 1.0))[1] == 2.0


def chooses_array(x, y, c):
    a = y
    if c > 0.0:
        a = x
    a[0] = c
    return a[0] * c


def swap_buffers(u, c, n):
    v = np.zeros(len(u))
    for k in range(n):
        for i in range(len(u)):
            v[i] = math.sin(u[i]) * c
        u, v = v, u   # double buffering: arrays carried by the loop
    s = 0.0
    for i in range(len(u)):
        s += u[i]
    return s


def choose_in_loop(x, y, c):
    s = 0.0
    for k in range(3):
        a = y
        if c * k > 0.5:
            a = x
        a[0] = c
        s += a[0]
    return s


def swap_while(u, c, n):
    v = np.zeros(len(u))
    k = 0
    while k < n:
        for i in range(len(u)):
            v[i] = math.sin(u[i]) * c
        u, v = v, u
        k += 1
    s = 0.0
    for i in range(len(u)):
        s += u[i]
    return s


def test_arrays_chosen_by_branches_or_carried_by_loops():
    # forward mode carries tangent arrays through scf.if results and loop carries
    x, y = np.array([1.0, 2.0]), np.array([3.0, 4.0])
    for c in (0.5, -0.5):
        # the result a[0] * c with a[0] = c: d/dc = 2c, and nothing from x or y
        _, dc = lldiff.jvp(chooses_array, (x.copy(), y.copy(), c), (None, None, 1.0))
        assert dc == pytest.approx(2 * c, rel=1e-15)
        _, dxy = lldiff.jvp(chooses_array, (x.copy(), y.copy(), c), (np.ones(2), np.ones(2),
                                                                      0.0))
        assert dxy == 0.0
    u0 = np.array([0.3, 0.6, 0.9])
    f = lldiff.jit(swap_buffers)
    _, dc = lldiff.jvp(f, (u0.copy(), 0.7, 3), (None, 1.0, None))
    fd = (f(u0.copy(), 0.7 + 1e-6, 3) - f(u0.copy(), 0.7 - 1e-6, 3)) / 2e-6
    assert dc == pytest.approx(fd, rel=1e-7)
    v = np.array([0.1, -0.2, 0.3])
    _, du = lldiff.jvp(f, (u0.copy(), 0.7, 4), (v, None, None))
    fd = (f(u0 + 1e-6 * v, 0.7, 4) - f(u0 - 1e-6 * v, 0.7, 4)) / 2e-6
    assert du == pytest.approx(fd, rel=1e-7)
    # reverse mode runs the swaps backwards (shadows swap along)
    for n in (0, 1, 2, 3, 4):
        gu, gc = lldiff.grad(f, (0, 1))(u0.copy(), 0.7, n)
        fd = (f(u0.copy(), 0.7 + 1e-6, n) - f(u0.copy(), 0.7 - 1e-6, n)) / 2e-6
        assert gc == pytest.approx(fd, rel=1e-7, abs=1e-9)
        fd = (f(u0 + 1e-6 * v, 0.7, n) - f(u0 - 1e-6 * v, 0.7, n)) / 2e-6
        assert gu @ v == pytest.approx(fd, rel=1e-7)
        _, t = lldiff.jvp(f, (u0.copy(), 0.7, n), (v, 1.0, None))
        assert t == pytest.approx(gu @ v + gc, rel=1e-12)
    # and gives an array chosen by a branch its argument's shadow
    for c in (0.5, -0.5):
        gx, gy, gc = lldiff.grad(chooses_array, (0, 1, 2))(x.copy(), y.copy(), c)
        assert gc == 2 * c  # a[0] = c, then a[0] * c; a[1] does not depend on c
        np.testing.assert_array_equal(gx + gy, [0.0, 0.0])
    # not yet: a branch inside a loop choosing an array
    with pytest.raises(NotImplementedError, match="chosen by a branch inside a loop"):
        lldiff.grad(choose_in_loop, argnums=2)(x.copy(), y.copy(), 0.7)
    # a while loop that swaps arrays, in both modes, equals the for loop
    for n in (0, 1, 3):
        _, dc = lldiff.jvp(swap_while, (u0.copy(), 0.7, n), (None, 1.0, None))
        assert dc == pytest.approx(lldiff.jvp(f, (u0.copy(), 0.7, n), (None, 1.0, None))[1],
                                   rel=1e-15)
        gw = lldiff.grad(swap_while, (0, 1))(u0.copy(), 0.7, n)
        gf = lldiff.grad(f, (0, 1))(u0.copy(), 0.7, n)
        np.testing.assert_allclose(gw[0], gf[0], rtol=1e-15)
        assert gw[1] == pytest.approx(gf[1], rel=1e-15)


def test_arguments_of_other_types_name_arrays_in_the_error():
    with pytest.raises(TypeError, match="a float, an int, a bool or a numpy array, not str"):
        lldiff.jit(norm)("abc")


@pytest.mark.skipif(not (shutil.which("mlir-opt-22") or shutil.which("mlir-opt")),
                    reason="mlir-opt-22 not installed")
def test_array_ir_parses_with_mlir_opt():
    tool = shutil.which("mlir-opt-22") or shutil.which("mlir-opt")
    for fn, make in CASES:
        text = lldiff.jit(fn).inspect("ir", *make())
        r = subprocess.run([tool, "--allow-unregistered-dialect", "-"], input=text,
                           capture_output=True, text=True)
        assert r.returncode == 0, f"{fn.__name__}:\n{r.stderr[:2000]}\n{text[:2000]}"


def _sum_squares(x):
    s = 0.0
    for i in range(x.shape[0]):
        s += x[i] * x[i]
    return s


def test_fastmath_reassociates_sums_into_vector_code():
    x = np.random.default_rng(7).normal(size=10_001)
    plain = lldiff.jit(_sum_squares)
    fast = lldiff.jit(_sum_squares, fastmath=True)
    want = math.fsum(v * v for v in x)
    assert plain(x) == pytest.approx(want, rel=1e-13)
    assert fast(x) == pytest.approx(want, rel=1e-13)  # another summation order, same sum
    assert "fadd reassoc contract" in fast.inspect("llvm", x)
    assert "fadd reassoc" not in plain.inspect("llvm", x)
    vec = re.compile(r"<\d+ x double>")
    assert vec.search(fast.inspect("llvm-opt", x)) and not vec.search(plain.inspect("llvm-opt", x))
    v, g = lldiff.jit_grad(_sum_squares, fastmath=True)(x)
    assert v == pytest.approx(want, rel=1e-13)
    np.testing.assert_allclose(g, 2 * x, rtol=1e-15)
    nan = x.copy()
    nan[5] = math.nan
    assert math.isnan(fast(nan))  # NaN keeps its meaning (no nnan flag)
