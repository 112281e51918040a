"""GPU maps (`lldiff.vectorize(f, target="cuda")`, lldiff/gpu.py, runtime/cudadrv.py).

Without a GPU: the driver's absence is a clear error and nothing is attempted; driver error
codes become exceptions (a stub libcuda); and the whole launch path runs against an emulated
device (tests/gpu_emulator.py) whose kernels are the GPU map kernels built for the host, so
staging, broadcasting, device arrays, `out=`, result shapes of every derivative map, the
grid-stride loop and failure recovery are checked against the CPU map. With a GPU (skipped
elsewhere): kernel results equal the CPU's to 1e-13 relative on 10^6 points.
"""

import math
import os
import sys

import numpy as np
import pytest

import lldiff
from lldiff import gpu
from lldiff.runtime import cudadrv

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import corpus  # noqa: E402
from gpu_emulator import EmulatedDevice, FakeDeviceArray  # noqa: E402


@pytest.fixture
def dev(monkeypatch):
    d = EmulatedDevice()
    monkeypatch.setattr(gpu, "_device", lambda ordinal: d)
    yield d


def divide(x, n):
    return x / (n - 3)


def two_results(x, n):
    return x * n, n % 3 == 0


def long_loop(x, n):
    s = 0.0
    i = 0
    while i < n:
        s = s + math.sin(x * s + i)
        i += 1
    return s


def with_aux(x, y):
    return x * y + math.exp(x), x - y


def _same(a, b):
    if isinstance(a, tuple):
        assert isinstance(b, tuple) and len(a) == len(b)
        for p, q in zip(a, b):
            _same(p, q)
        return
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape and a.dtype == b.dtype
    np.testing.assert_array_equal(a, b)


# --- every kind of map, emulated, against the CPU map ---------------------------------------

Z = np.linspace(0.05, 12.0, 997)
MAPS = {
    "primal": (lambda: corpus.besselj, (2, Z)),
    "grad": (lambda: lldiff.grad(corpus.besselj, 1), (np.array([0, 1, 3])[:, None], Z)),
    "value_and_grad": (lambda: lldiff.value_and_grad(with_aux, (0, 1), has_aux=True),
                       (Z, 0.5)),
    "jacfwd": (lambda: lldiff.jacfwd(with_aux, (0, 1)), (Z, Z[::-1])),
    "jit_grad": (lambda: lldiff.jit_grad(with_aux), (Z, 2.0)),
    "two_results": (lambda: two_results, (Z, np.arange(997))),
}


@pytest.mark.parametrize("kind", sorted(MAPS))
def test_emulated_kernel_equals_the_cpu_map(dev, kind):
    make, args = MAPS[kind]
    f = make()
    cpu = lldiff.vectorize(f)(*args)
    got = lldiff.vectorize(f, target="cuda")(*args)
    _same(got, cpu)  # host math in both: bit for bit
    assert dev.launches and all(b == gpu.BLOCK for _, b in dev.launches)
    assert not dev.memory  # every staging and result buffer was freed


def test_results_the_call_drops_are_not_copied_back(dev, monkeypatch):
    """A gradient map's kernel writes the values too; from numpy arguments only the gradient
    comes back over the bus (plus the 8-byte failure flag)."""
    copied = []
    to_host = dev.to_host
    monkeypatch.setattr(dev, "to_host", lambda h, d, n: (copied.append(n), to_host(h, d, n)))
    g = lldiff.vectorize(lldiff.grad(corpus.besselj, 1), target="cuda")(2, Z)
    np.testing.assert_array_equal(g, lldiff.vectorize(lldiff.grad(corpus.besselj, 1))(2, Z))
    assert sorted(copied) == [8, Z.nbytes]
    copied.clear()
    y, g2 = lldiff.vectorize(lldiff.value_and_grad(corpus.besselj, 1), target="cuda")(2, Z)
    assert sorted(copied) == [8, Z.nbytes, Z.nbytes] and np.array_equal(g2, g)


def test_the_grid_stride_loop_covers_every_element_whatever_the_grid(monkeypatch):
    for block, blocks in ((1, 1), (3, 2), (7, 5), (64, 1)):
        d = EmulatedDevice(block, blocks)
        monkeypatch.setattr(gpu, "_device", lambda ordinal: d)
        x = np.arange(101, dtype=np.float64)
        got = lldiff.vectorize(two_results, target="cuda")(x, np.arange(101))
        np.testing.assert_array_equal(got[0], x * np.arange(101))


def test_empty_and_zero_d_maps(dev):
    vf = lldiff.vectorize(two_results, target="cuda")
    a, b = vf(np.empty(0), np.empty(0, dtype=np.int64))
    assert a.shape == (0,) and b.dtype == np.bool_
    a, b = vf(1.5, 3)
    assert a.shape == () and float(a) == 4.5 and bool(b)


# --- device arrays -----------------------------------------------------------------------------

def test_device_arguments_are_read_in_place_and_results_stay_on_the_device(dev):
    z = FakeDeviceArray(dev, Z, stream=7)
    vf = lldiff.vectorize(corpus.besselj, target="cuda")
    y = vf(2, z)
    assert isinstance(y, lldiff.DeviceArray)
    cai = y.__cuda_array_interface__
    assert cai["shape"] == Z.shape and cai["typestr"] == "<f8" and cai["version"] == 3
    np.testing.assert_array_equal(np.asarray(y), lldiff.vectorize(corpus.besselj)(2, Z))
    assert dev.waited == [7]  # the producer's stream was waited for
    x = cudadrv.to_device(Z[::2], dev)  # (a strided host array: copied contiguous)
    np.testing.assert_array_equal(vf(2, x).copy_to_host(),
                                  lldiff.vectorize(corpus.besselj)(2, Z[::2]))
    # a DeviceArray result feeds the next map without a copy
    again = vf(2, y)
    np.testing.assert_array_equal(again.copy_to_host(),
                                  lldiff.vectorize(corpus.besselj)(2, np.asarray(y)))


def test_strided_and_broadcast_device_arguments(dev):
    base = np.linspace(0.1, 5, 30)
    z = FakeDeviceArray(dev, base[::3].copy(), strides=(24,), nbytes=base.nbytes)
    dev.to_device(z.ptr, base.ctypes.data, base.nbytes)  # the whole array; read every third
    one = FakeDeviceArray(dev, np.array([2.0]))
    vf = lldiff.vectorize(two_results, target="cuda")
    a, b = vf(z, 4)
    np.testing.assert_array_equal(np.asarray(a), base[::3] * 4)
    a, _ = vf(one, np.arange(5))
    np.testing.assert_array_equal(np.asarray(a), 2.0 * np.arange(5))
    grid = FakeDeviceArray(dev, np.ones((4, 6)), strides=(96, 16), nbytes=8 * 48)
    with pytest.raises(ValueError, match="argument 'x' is a device array of shape"):
        vf(grid, 1)
    f4 = FakeDeviceArray(dev, np.ones(4, np.float32))
    with pytest.raises(TypeError, match="argument 'x'.*'<f4'"):
        vf(f4, 1)


def test_out_takes_numpy_and_device_arrays(dev):
    vf = lldiff.vectorize(two_results, target="cuda")
    x, n = np.linspace(-1, 1, 500), np.arange(500)
    out = (np.empty(500), np.empty(500, np.bool_))
    got = vf(x, n, out=out)
    assert got[0] is out[0] and got[1] is out[1]
    np.testing.assert_array_equal(out[0], x * n)
    d_out = (FakeDeviceArray(dev, np.zeros(500)), FakeDeviceArray(dev, np.zeros(500, np.bool_)))
    got = vf(x, n, out=d_out)
    assert got[0] is d_out[0]
    np.testing.assert_array_equal(d_out[0].read(), x * n)
    np.testing.assert_array_equal(d_out[1].read(), n % 3 == 0)
    mixed = (np.empty(500), FakeDeviceArray(dev, np.zeros(500, np.bool_)))
    got = vf(x, n, out=mixed)
    assert got[0] is mixed[0] and got[1] is mixed[1]
    np.testing.assert_array_equal(mixed[0], x * n)
    np.testing.assert_array_equal(mixed[1].read(), n % 3 == 0)
    with pytest.raises(ValueError, match=r"out\[0\] must be"):
        vf(x, n, out=(np.empty(10), np.empty(10, np.bool_)))
    with pytest.raises(ValueError, match=r"out\[1\] must be"):
        vf(x, n, out=(np.empty(500), FakeDeviceArray(dev, np.zeros(500, np.bool_),
                                                     readonly=True)))
    with pytest.raises(ValueError, match="out= needs 2 arrays"):
        vf(x, n, out=np.empty(500))


# --- failures ---------------------------------------------------------------------------------

def test_a_failing_element_raises_what_the_cpu_raises(dev):
    n = np.arange(10)
    with pytest.raises(ZeroDivisionError) as cpu:
        lldiff.vectorize(divide)(1.0, n)
    with pytest.raises(ZeroDivisionError) as on_gpu:
        lldiff.vectorize(divide, target="cuda")(1.0, n)
    assert str(on_gpu.value) == str(cpu.value)
    with pytest.raises(ZeroDivisionError):  # the element is read back from the device too
        lldiff.vectorize(divide, target="cuda")(1.0, FakeDeviceArray(dev, n))


def nested_failures(x, n):
    s = 0.0
    k = 0
    while k < n:
        if x > 0.0:
            for i in range(3):
                s += 1.0 / (x - i)  # fails for x = 1 or 2, in a loop in a branch in a loop
        else:
            s += k // (n - 4)  # fails for n = 4 (and x <= 0), in a branch in a loop
        k += 1
    return s + 1.0 / (n - 2)  # fails for n = 2, at the top


def test_errors_in_nested_loops_and_branches_raise_what_the_cpu_raises(dev):
    cases = [(1.0, 5), (2.0, 1), (-1.0, 4), (0.5, 2), (0.5, 0), (-3.0, 0)]
    for f in (nested_failures, lldiff.grad(nested_failures, 0)):
        for bad_x, bad_n in cases:
            x = np.array([0.5, -0.5, bad_x, 3.5])
            n = np.array([3, 6, bad_n, 1])
            try:
                want = lldiff.vectorize(f)(x, n)
            except ArithmeticError as e:
                with pytest.raises(type(e)) as got:
                    lldiff.vectorize(f, target="cuda")(x, n)
                assert str(got.value) == str(e)
            else:
                _same(lldiff.vectorize(f, target="cuda")(x, n), want)


def test_on_a_gpu_errors_leave_loops_through_their_end():
    """A warp reconverges where a divergent branch's paths meet again: an error must not
    return from inside a loop, or threads leaving it at different iterations run what follows
    group by group (codegen/llvm.py, `fail`). Two raises are inside the loop and one after it:
    the GPU function returns on success, for the raise after the loop, and once for the error
    passed on from the loop's end; the CPU's returns at each raise."""
    from lldiff.codegen.llvm import emit_module
    from lldiff.ir import F64, I64
    spec = lldiff.jit(nested_failures)._ir((F64, I64))

    def returns(target):
        lm, _ = emit_module(spec.module, set(), target=target)
        return str(lm.get_global(spec.symbol)).count("\n  ret i32")
    assert returns("nvptx") == 3
    assert returns("cpu") == 4


def test_a_tape_too_long_for_a_gpu_thread_is_a_memory_error(dev):
    g = lldiff.grad(long_loop)
    n = np.array([3, 5, 100_000, 2])
    cpu = lldiff.vectorize(g)(0.3, n)  # the CPU's tape grows on the heap
    assert np.all(np.isfinite(cpu))
    with pytest.raises(MemoryError, match="element 2: a reverse-mode tape outgrew"):
        lldiff.vectorize(g, target="cuda")(0.3, n)
    short = lldiff.vectorize(g, target="cuda")(0.3, n[[0, 1, 3]])
    np.testing.assert_array_equal(short, cpu[[0, 1, 3]])


# --- the driver ---------------------------------------------------------------------------------

def test_arguments_of_vectorize_are_checked():
    with pytest.raises(ValueError, match="target must be 'cpu' or 'cuda'"):
        lldiff.vectorize(divide, target="gpu")
    with pytest.raises(ValueError, match="device must be a CUDA device ordinal"):
        lldiff.vectorize(divide, target="cuda", device=-1)


def test_no_driver_is_a_clear_error_and_nothing_is_attempted(monkeypatch, tmp_path):
    monkeypatch.setenv("LLDIFF_LIBCUDA", str(tmp_path / "libcuda.so.1"))
    monkeypatch.setattr(cudadrv, "_lib", None)
    monkeypatch.setattr(cudadrv, "_devices", {})
    vf = lldiff.vectorize(divide, target="cuda")  # making the map needs no driver
    with pytest.raises(cudadrv.CudaDriverError, match="no CUDA driver.*target='cpu'"):
        vf(1.0, np.arange(4, 8))
    assert cudadrv._lib is None and not cudadrv.available()


class _StubLib:
    """libcuda's calls as Python functions: success unless `fail` names the call."""

    def __init__(self, fail=None, code=2):
        self.fail, self.code, self.calls = fail, code, []

    def __getattr__(self, name):
        def call(*args):
            self.calls.append(name)
            if name == self.fail:
                return self.code
            if name in ("cuGetErrorName", "cuGetErrorString"):
                text = b"CUDA_ERROR_OUT_OF_MEMORY" if name.endswith("Name") else b"out of memory"
                args[1]._obj.value = text
            if name == "cuDeviceGetCount":
                args[0]._obj.value = 1
            if name == "cuDeviceGetAttribute":
                args[0]._obj.value = {75: 9, 76: 0, 16: 132}[args[1]]
            if name == "cuModuleLoadDataEx":
                args[0]._obj.value = 1234
            if name == "cuModuleGetFunction":
                args[0]._obj.value = 5678
            return 0
        return call


def test_driver_error_codes_become_exceptions():
    dev = cudadrv.Device(_StubLib(), 0)
    assert dev.arch == "sm_90" and dev.multiprocessors == 132
    assert dev.grid(10, 256) == 1 and dev.grid(10**9, 256) == 32 * 132
    dev.lib = _StubLib(fail="cuMemAlloc_v2")
    with pytest.raises(MemoryError, match=r"cuMemAlloc\(800 bytes\) failed: "
                                          r"CUDA_ERROR_OUT_OF_MEMORY \(2\)") as e:
        dev.alloc(800)
    assert isinstance(e.value, cudadrv.CudaError) and e.value.code == 2
    with pytest.raises(cudadrv.CudaDriverError, match="did not initialize"):
        cudadrv.Device(_StubLib(fail="cuInit", code=100), 0)
    with pytest.raises(cudadrv.CudaDriverError, match="no CUDA device 3"):
        cudadrv.Device(_StubLib(), 3)


class _MemoryStub(_StubLib):
    """A stub whose cuMemAlloc hands out addresses until `capacity` bytes are in use."""

    def __init__(self, capacity):
        super().__init__()
        self.capacity, self.used, self.blocks, self.next = capacity, 0, {}, 0x1000

    def cuMemAlloc_v2(self, p, size):
        self.calls.append("cuMemAlloc_v2")
        if self.used + size > self.capacity:
            return 2
        p._obj.value, self.next = self.next, self.next + size
        self.blocks[p._obj.value] = size
        self.used += size
        return 0

    def cuMemFree_v2(self, ptr):
        self.calls.append("cuMemFree_v2")
        self.used -= self.blocks.pop(ptr)
        return 0


def test_freed_device_memory_is_reused_and_given_back_when_the_driver_runs_out():
    lib = _MemoryStub(capacity=4096)
    dev = cudadrv.Device(lib, 0)
    a = dev.alloc(100)
    assert lib.blocks[a] == 512  # sizes round up to 512 bytes
    dev.free(a)
    assert dev.cached_bytes == 512 and lib.calls.count("cuMemFree_v2") == 0
    assert dev.alloc(300) == a and lib.calls.count("cuMemAlloc_v2") == 1  # reused
    dev.free(a)
    # 4096 bytes do not fit beside the cached block: the cache is given back, then it fits
    b = dev.alloc(4096)
    assert lib.calls.count("cuMemFree_v2") == 1 and dev.cached_bytes == 0 and lib.used == 4096
    with pytest.raises(cudadrv.CudaMemoryError, match=r"cuMemAlloc\(1 bytes\)"):
        dev.alloc(1)  # nothing cached to give back: the driver's error
    dev.free(b)
    dev.release()
    assert lib.used == 0 and dev.cached_bytes == 0
    dev.CACHE_LIMIT = 1024  # a block the cache has no room for goes back to the driver
    dev.free(dev.alloc(2048))
    assert lib.used == 0 and dev.cached_bytes == 0


def test_modules_are_loaded_once_per_ptx_and_the_arch_follows_the_device():
    lib = _StubLib()
    dev = cudadrv.Device(lib, 0)
    f1 = dev.function(".version 7.8\n", "k_kernel")
    f2 = dev.function(".version 7.8\n", "k_kernel")
    assert f1 is f2 and lib.calls.count("cuModuleLoadDataEx") == 1
    dev.function(".version 8.0\n", "k_kernel")
    assert lib.calls.count("cuModuleLoadDataEx") == 2
    for cc, arch in (((7, 0), "sm_70"), ((7, 5), "sm_75"), ((8, 9), "sm_89"), ((12, 2), "sm_121"),
                     ((10, 0), "sm_100")):
        dev.compute_capability = cc
        assert dev.arch == arch
    dev.compute_capability = (6, 1)
    with pytest.raises(cudadrv.CudaDriverError, match="older than"):
        dev.arch


def test_the_dispatcher_makes_each_kernel_once_per_arch():
    from lldiff.ir import F64, I64
    from lldiff.runtime import cuda
    try:
        cuda.find_libdevice()
    except cuda.CudaToolkitError as e:
        pytest.skip(str(e))
    d = lldiff.jit(corpus.besselj)
    a = d._gpu_kernel((I64, F64), arch="sm_80")
    assert d._gpu_kernel((I64, F64), arch="sm_80") is a
    b = d._gpu_kernel((I64, F64), arch="sm_90")
    assert ".target sm_80" in a[0] and ".target sm_90" in b[0] and a[1] == b[1]
    assert f".entry {a[1]}(" in a[0]


# --- on a real GPU -------------------------------------------------------------------------------

needs_gpu = pytest.mark.skipif(not cudadrv.available(), reason="no CUDA driver or GPU here")


@needs_gpu
@pytest.mark.parametrize("kind", ["primal", "jvp", "grad"])
def test_gpu_kernels_equal_the_cpu_on_a_million_points(kind):
    z = np.random.default_rng(0).uniform(0.0, 10.0, 10**6)
    f = {"primal": corpus.besselj, "jvp": lldiff.jacfwd(corpus.besselj, 1),
         "grad": lldiff.grad(corpus.besselj, 1)}[kind]
    cpu = lldiff.vectorize(f)(2, z)
    got = lldiff.vectorize(f, target="cuda")(2, z)
    # relative to each value, and to the function's scale where a value crosses zero (there
    # the alternating series cancels and libdevice's pow may differ from libm's by an ulp)
    np.testing.assert_allclose(got, cpu, rtol=1e-13, atol=1e-13 * np.abs(cpu).max())
