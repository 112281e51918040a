"""The CUDA driver (installed as `lldiff.runtime.cudadrv`): ctypes bindings to libcuda for what
lldiff's GPU maps need, and device arrays.

Nothing here runs at import. `device(ordinal)` loads libcuda (`$LLDIFF_LIBCUDA`, else
libcuda.so.1 / nvcuda.dll as the system's loader finds them), calls cuInit, retains the
device's primary context (the one the CUDA runtime, CuPy, PyTorch and numba-cuda share, so
their device pointers are valid here) and caches the `Device`. No driver, or no device, is a
`CudaDriverError` and nothing else is attempted; every other failing call is a `CudaError`
naming the call and the driver's error (`CudaMemoryError`, also a MemoryError, for
CUDA_ERROR_OUT_OF_MEMORY).

`Device` loads PTX modules once per PTX text (JIT-compiled by the driver for the device, with
the driver's error log in the exception), allocates, copies and launches on the legacy default
stream, synchronously. Its memory comes from a caching allocator (`Device.alloc`/`free`;
`release()` gives the cached blocks back to the driver). `DeviceArray` is device memory
lldiff allocated, exposing `__cuda_array_interface__` (v3) so CuPy, PyTorch and numba-cuda
take it without a copy.

Owns the driver API and device memory. Never imports lldiff's IR, passes or codegen; which
kernel to launch with what is lldiff/gpu.py's.
"""

import ctypes
import ctypes.util
import math
import os
import sys
import threading

__all__ = ["CudaDriverError", "CudaError", "CudaMemoryError", "Device", "DeviceArray", "device",
           "available", "to_device", "LLVM_ARCHS"]

# The GPU architectures LLVM 22's NVPTX backend knows (a device newer than all of them gets
# PTX for the newest: the driver JIT-compiles PTX forward to the device it runs on).
LLVM_ARCHS = (70, 75, 80, 86, 87, 88, 89, 90, 100, 101, 103, 110, 120, 121)

_SUCCESS = 0
_OUT_OF_MEMORY = 2
_ATTR_CC_MAJOR, _ATTR_CC_MINOR, _ATTR_SM_COUNT = 75, 76, 16
_JIT_ERROR_LOG_BUFFER, _JIT_ERROR_LOG_BUFFER_SIZE_BYTES = 5, 6


class CudaDriverError(RuntimeError):
    """No usable CUDA driver or device: libcuda is missing, cuInit fails, or there is no
    device with that ordinal."""


class CudaError(RuntimeError):
    """A CUDA driver call failed: `.call`, `.code` (the CUresult) and `.name`
    (e.g. "CUDA_ERROR_ILLEGAL_ADDRESS")."""

    def __init__(self, call, code, name, text):
        super().__init__(f"{call} failed: {name} ({code}): {text}")
        self.call, self.code, self.name = call, code, name


class CudaMemoryError(CudaError, MemoryError):
    """CUDA_ERROR_OUT_OF_MEMORY."""


_lib = None
_lib_lock = threading.Lock()
_devices = {}


def _library():
    """libcuda as a ctypes library, loaded once; CudaDriverError when there is none."""
    global _lib
    with _lib_lock:
        if _lib is not None:
            return _lib
        names = [os.environ["LLDIFF_LIBCUDA"]] if os.environ.get("LLDIFF_LIBCUDA") else \
            ["nvcuda.dll"] if sys.platform == "win32" else \
            ["libcuda.so.1", "libcuda.so", ctypes.util.find_library("cuda")]
        errors = []
        for name in names:
            if not name:
                continue
            try:
                lib = ctypes.CDLL(name)
                break
            except OSError as e:
                errors.append(str(e))
        else:
            raise CudaDriverError("no CUDA driver: libcuda could not be loaded ("
                                  + "; ".join(errors) + "). GPU maps need an NVIDIA GPU and "
                                  "its driver; use target='cpu' (the default) without one")
        _declare(lib)
        _lib = lib
        return lib


def _declare(lib):
    u64, i32, vp = ctypes.c_uint64, ctypes.c_int, ctypes.c_void_p
    sig = {
        "cuInit": [ctypes.c_uint],
        "cuDeviceGetCount": [ctypes.POINTER(i32)],
        "cuDeviceGet": [ctypes.POINTER(i32), i32],
        "cuDeviceGetName": [ctypes.c_char_p, i32, i32],
        "cuDeviceGetAttribute": [ctypes.POINTER(i32), i32, i32],
        "cuDevicePrimaryCtxRetain": [ctypes.POINTER(vp), i32],
        "cuCtxSetCurrent": [vp],
        "cuCtxSynchronize": [],
        "cuStreamSynchronize": [vp],
        "cuModuleLoadDataEx": [ctypes.POINTER(vp), ctypes.c_char_p, ctypes.c_uint,
                               ctypes.POINTER(i32), ctypes.POINTER(vp)],
        "cuModuleGetFunction": [ctypes.POINTER(vp), vp, ctypes.c_char_p],
        "cuMemAlloc_v2": [ctypes.POINTER(u64), ctypes.c_size_t],
        "cuMemFree_v2": [u64],
        "cuMemcpyHtoD_v2": [u64, vp, ctypes.c_size_t],
        "cuMemcpyDtoH_v2": [vp, u64, ctypes.c_size_t],
        "cuLaunchKernel": [vp, ctypes.c_uint, ctypes.c_uint, ctypes.c_uint, ctypes.c_uint,
                           ctypes.c_uint, ctypes.c_uint, ctypes.c_uint, vp,
                           ctypes.POINTER(vp), ctypes.POINTER(vp)],
        "cuGetErrorName": [i32, ctypes.POINTER(ctypes.c_char_p)],
        "cuGetErrorString": [i32, ctypes.POINTER(ctypes.c_char_p)],
    }
    for name, argtypes in sig.items():
        fn = getattr(lib, name)
        fn.argtypes = argtypes
        fn.restype = ctypes.c_int


def _check(lib, code, call, log=None):
    if code == _SUCCESS:
        return
    name, text = ctypes.c_char_p(), ctypes.c_char_p()
    lib.cuGetErrorName(code, ctypes.byref(name))
    lib.cuGetErrorString(code, ctypes.byref(text))
    name = name.value.decode() if name.value else "CUDA_ERROR_UNKNOWN"
    text = text.value.decode() if text.value else "unknown CUDA error"
    if log:
        text += f"\n{log}"
    cls = CudaMemoryError if code == _OUT_OF_MEMORY else CudaError
    raise cls(call, code, name, text)


def device(ordinal=0):
    """The `Device` for CUDA device `ordinal`, made once; CudaDriverError without a driver
    or without such a device."""
    if not isinstance(ordinal, int) or isinstance(ordinal, bool) or ordinal < 0:
        raise ValueError(f"device must be a CUDA device ordinal (an int >= 0), got {ordinal!r}")
    got = _devices.get(ordinal)
    if got is None:
        lib = _library()
        with _lib_lock:
            got = _devices.get(ordinal)
            if got is None:
                got = _devices[ordinal] = Device(lib, ordinal)
    return got


def available():
    """Whether a CUDA driver and at least one device are there (tries to load libcuda)."""
    try:
        device(0)
        return True
    except (CudaDriverError, CudaError):
        return False


class Device:
    """One CUDA device in its primary context. Its methods make the context current on the
    calling thread first, so any thread may use it."""

    def __init__(self, lib, ordinal):
        self.lib = lib
        code = lib.cuInit(0)
        if code != _SUCCESS:
            try:
                _check(lib, code, "cuInit")
            except CudaError as e:
                raise CudaDriverError(f"the CUDA driver did not initialize: {e}") from None
        count = ctypes.c_int()
        _check(lib, lib.cuDeviceGetCount(ctypes.byref(count)), "cuDeviceGetCount")
        if ordinal >= count.value:
            raise CudaDriverError(f"no CUDA device {ordinal}: the driver sees {count.value}")
        dev = ctypes.c_int()
        _check(lib, lib.cuDeviceGet(ctypes.byref(dev), ordinal), "cuDeviceGet")
        self.ordinal, self.handle = ordinal, dev.value
        buf = ctypes.create_string_buffer(256)
        _check(lib, lib.cuDeviceGetName(buf, 256, dev.value), "cuDeviceGetName")
        self.name = buf.value.decode()
        self.compute_capability = (self._attribute(_ATTR_CC_MAJOR),
                                   self._attribute(_ATTR_CC_MINOR))
        self.multiprocessors = self._attribute(_ATTR_SM_COUNT)
        ctx = ctypes.c_void_p()
        _check(lib, lib.cuDevicePrimaryCtxRetain(ctypes.byref(ctx), dev.value),
               "cuDevicePrimaryCtxRetain")
        self.context = ctx
        self._functions = {}
        self._lock = threading.Lock()
        self._cached = {}   # block size -> [addresses of free blocks of that size]
        self._sizes = {}    # address of a block in use -> its size
        self.cached_bytes = 0

    def __repr__(self):
        return f"<lldiff CUDA device {self.ordinal}: {self.name}, {self.arch}>"

    def _attribute(self, attr):
        v = ctypes.c_int()
        _check(self.lib, self.lib.cuDeviceGetAttribute(ctypes.byref(v), attr, self.handle),
               "cuDeviceGetAttribute")
        return v.value

    @property
    def arch(self):
        """The PTX target for this device: its own sm_XY, or the newest LLVM knows below it."""
        cc = self.compute_capability[0] * 10 + self.compute_capability[1]
        known = [a for a in LLVM_ARCHS if a <= cc]
        if not known:
            raise CudaDriverError(f"{self.name} (sm_{cc}) is older than every GPU LLVM's "
                                  "NVPTX backend targets here (sm_70 and newer)")
        return f"sm_{known[-1]}"

    def _current(self):
        _check(self.lib, self.lib.cuCtxSetCurrent(self.context), "cuCtxSetCurrent")

    def function(self, ptx, name):
        """The kernel `name` of the PTX text `ptx`, its module loaded once per PTX text."""
        key = (ptx, name)  # (a str caches its hash: a hit costs no pass over the text)
        fn = self._functions.get(key)
        if fn is not None:
            return fn
        with self._lock:
            fn = self._functions.get(key)
            if fn is not None:
                return fn
            self._current()
            mod = ctypes.c_void_p()
            log = ctypes.create_string_buffer(8192)
            opts = (ctypes.c_int * 2)(_JIT_ERROR_LOG_BUFFER, _JIT_ERROR_LOG_BUFFER_SIZE_BYTES)
            vals = (ctypes.c_void_p * 2)(ctypes.cast(log, ctypes.c_void_p).value, 8192)
            code = self.lib.cuModuleLoadDataEx(ctypes.byref(mod), ptx.encode() + b"\0", 2,
                                               opts, vals)
            _check(self.lib, code, "cuModuleLoadDataEx", log.value.decode(errors="replace"))
            f = ctypes.c_void_p()
            _check(self.lib, self.lib.cuModuleGetFunction(ctypes.byref(f), mod, name.encode()),
                   f"cuModuleGetFunction({name})")
            fn = self._functions[key] = f
            return fn

    # --- memory: a caching allocator ---------------------------------------------------------
    # cuMemAlloc + cuMemFree took ~80 us per pair on an H100 (2026-11-22), more than launching a
    # small kernel, and a map call allocates its results, staged inputs and failure flag. So
    # freed blocks are kept by size (rounded up to 512 bytes, as CuPy's pool does) and handed
    # out again. Reusing a block at once is safe for lldiff's own work: every copy and launch
    # here is synchronous. An allocation the driver refuses first gives the cached blocks back
    # and tries again; at most CACHE_LIMIT bytes stay cached.

    BLOCK_ROUND = 512
    CACHE_LIMIT = 1 << 30

    def alloc(self, nbytes):
        """Device memory of `nbytes` bytes (at least one); its address."""
        size = -(-max(1, nbytes) // self.BLOCK_ROUND) * self.BLOCK_ROUND
        with self._lock:
            free = self._cached.get(size)
            if free:
                ptr = free.pop()
                self.cached_bytes -= size
                self._sizes[ptr] = size
                return ptr
        self._current()
        p = ctypes.c_uint64()
        code = self.lib.cuMemAlloc_v2(ctypes.byref(p), size)
        if code == _OUT_OF_MEMORY and self.cached_bytes:
            self.release()
            code = self.lib.cuMemAlloc_v2(ctypes.byref(p), size)
        _check(self.lib, code, f"cuMemAlloc({nbytes} bytes)")
        with self._lock:
            self._sizes[p.value] = size
        return p.value

    def free(self, ptr):
        """Give back memory `alloc` returned: kept for reuse, or returned to the driver when
        the cache is full."""
        with self._lock:
            size = self._sizes.pop(ptr)
            if self.cached_bytes + size <= self.CACHE_LIMIT:
                self._cached.setdefault(size, []).append(ptr)
                self.cached_bytes += size
                return
        self._current()
        _check(self.lib, self.lib.cuMemFree_v2(ptr), "cuMemFree")

    def release(self):
        """Return every cached free block to the driver (memory in use stays)."""
        with self._lock:
            blocks = [p for free in self._cached.values() for p in free]
            self._cached.clear()
            self.cached_bytes = 0
        self._current()
        for p in blocks:
            _check(self.lib, self.lib.cuMemFree_v2(p), "cuMemFree")

    def to_device(self, dptr, host_ptr, nbytes):
        if nbytes:
            self._current()
            _check(self.lib, self.lib.cuMemcpyHtoD_v2(dptr, host_ptr, nbytes), "cuMemcpyHtoD")

    def to_host(self, host_ptr, dptr, nbytes):
        if nbytes:
            self._current()
            _check(self.lib, self.lib.cuMemcpyDtoH_v2(host_ptr, dptr, nbytes), "cuMemcpyDtoH")

    def launch(self, fn, grid, block, params):
        """Run kernel `fn` on `grid` blocks of `block` threads with `params` (ctypes values,
        in the kernel's parameter order) and wait for it."""
        self._current()
        ptrs = (ctypes.c_void_p * len(params))(*[ctypes.addressof(p) for p in params])
        _check(self.lib, self.lib.cuLaunchKernel(fn, grid, 1, 1, block, 1, 1, 0, None, ptrs,
                                                 None), "cuLaunchKernel")
        _check(self.lib, self.lib.cuCtxSynchronize(), "cuCtxSynchronize (the kernel)")

    def wait_stream(self, stream):
        """Wait for a producer's stream (a `__cuda_array_interface__` "stream" entry: 1 is
        the legacy default stream, 2 the per-thread one, else a CUstream handle)."""
        self._current()
        _check(self.lib, self.lib.cuStreamSynchronize(ctypes.c_void_p(stream)),
               "cuStreamSynchronize")

    def grid(self, n, block):
        """Blocks for `n` elements: enough for one element per thread, at most 32 blocks per
        multiprocessor (the grid-stride loop covers the rest)."""
        return max(1, min((n + block - 1) // block, 32 * self.multiprocessors))


class DeviceArray:
    """Device memory holding a C-contiguous array that lldiff allocated: `shape`, `dtype`,
    `__cuda_array_interface__` (v3), `copy_to_host()` and numpy conversion
    (`np.asarray(a)` copies to the host). Freed when the object goes."""

    def __init__(self, dev, shape, dtype):
        import numpy as np
        self.device = dev
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        self.size = math.prod(self.shape)
        self.nbytes = self.size * self.dtype.itemsize
        self.ptr = dev.alloc(self.nbytes)

    def __del__(self):
        ptr, self.ptr = getattr(self, "ptr", 0), 0
        if ptr:
            try:
                self.device.free(ptr)
            except Exception:  # at interpreter exit the driver may be gone already
                pass

    def __repr__(self):
        return f"<lldiff.DeviceArray shape={self.shape} dtype={self.dtype} on {self.device.name}>"

    def __len__(self):
        if not self.shape:
            raise TypeError("len() of a 0-d DeviceArray")
        return self.shape[0]

    @property
    def ndim(self):
        return len(self.shape)

    @property
    def __cuda_array_interface__(self):
        return {"version": 3, "shape": self.shape, "typestr": self.dtype.str,
                "data": (self.ptr, False), "strides": None, "stream": None}

    def copy_to_host(self, out=None):
        """The array as a new numpy array (or into `out`, C-contiguous, same shape/dtype)."""
        import numpy as np
        if out is None:
            out = np.empty(self.shape, self.dtype)
        elif out.shape != self.shape or out.dtype != self.dtype or not out.flags.c_contiguous:
            raise ValueError(f"out must be a C-contiguous {self.dtype} array of shape "
                             f"{self.shape}")
        self.device.to_host(out.ctypes.data, self.ptr, self.nbytes)
        return out

    def __array__(self, dtype=None, copy=None):
        a = self.copy_to_host()
        return a if dtype is None else a.astype(dtype, copy=False)


def to_device(a, dev=0):
    """A DeviceArray holding a copy of numpy array (or number) `a`, C-contiguous, on device
    `dev` (an ordinal or a Device)."""
    import numpy as np
    if isinstance(dev, int):
        dev = device(dev)
    host = np.ascontiguousarray(a)
    out = DeviceArray(dev, host.shape, host.dtype)
    dev.to_device(out.ptr, host.ctypes.data, host.nbytes)
    return out
