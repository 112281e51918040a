"""A CUDA device emulated on the CPU, for testing GPU maps without a GPU.

`EmulatedDevice` has the methods lldiff/gpu.py uses of runtime/cudadrv.Device. Its "device
memory" is host memory it allocates and tracks: a copy or a kernel argument that is not inside
one of its live allocations fails the test (as a host pointer handed to a real GPU would
fault). Kernels are the GPU map kernels built with `emulate=True` (codegen/nvptx.py: host math,
GPU-thread tape semantics, thread registers as parameters); a launch runs every thread of a
small grid in turn, so the grid-stride loop, the failure index and the launcher's parameter
packing are exercised. What it cannot show: PTX, libdevice's math, real concurrency.
"""

import ctypes

from lldiff.runtime.cudadrv import Device


class EmulatedDevice:
    emulated = True
    name = "emulated GPU"
    arch = "sm_90"
    multiprocessors = 2
    grid = Device.grid

    def __init__(self, block=3, blocks=2):
        self.block, self.blocks = block, blocks  # the grid the emulator runs, whatever asked
        self.memory = {}  # address -> ctypes buffer
        self.compiled = {}
        self.launches = []  # (grid, block) asked for
        self.waited = []

    def function(self, code, name):
        if (code, name) not in self.compiled:
            from lldiff import caching
            from lldiff.runtime import get_engine
            owner, addresses = caching.load(get_engine().emit_object(code, 2), [name])
            self.compiled[code, name] = (owner, addresses[name])
        return self.compiled[code, name]

    def _check(self, ptr, nbytes):
        for base, buf in self.memory.items():
            if base <= ptr and ptr + nbytes <= base + len(buf):
                return
        raise AssertionError(f"{nbytes} bytes at {ptr:#x} are not emulated device memory")

    def alloc(self, nbytes):
        buf = ctypes.create_string_buffer(max(1, nbytes))
        self.memory[ctypes.addressof(buf)] = buf
        return ctypes.addressof(buf)

    def free(self, ptr):
        assert ptr in self.memory, f"free of {ptr:#x}, not an allocation"
        del self.memory[ptr]

    def to_device(self, dptr, host_ptr, nbytes):
        if nbytes:
            self._check(dptr, nbytes)
            ctypes.memmove(dptr, host_ptr, nbytes)

    def to_host(self, host_ptr, dptr, nbytes):
        if nbytes:
            self._check(dptr, nbytes)
            ctypes.memmove(host_ptr, dptr, nbytes)

    def wait_stream(self, stream):
        self.waited.append(stream)

    def launch(self, fn, grid, block, params):
        _, address = fn
        self.launches.append((grid, block))
        for p in params:  # every pointer parameter must be device memory
            if isinstance(p, ctypes.c_uint64):
                self._check(p.value, 1)
        proto = ctypes.CFUNCTYPE(None, *[ctypes.c_int32] * 4, *[type(p) for p in params])
        kernel = proto(address)
        for ctaid in range(self.blocks):
            for tid in range(self.block):
                kernel(tid, self.block, ctaid, self.blocks, *params)


class FakeDeviceArray:
    """A third-party device array (CuPy-like): `__cuda_array_interface__` over emulated
    device memory, with any strides, typestr and stream."""

    def __init__(self, dev, host, strides=None, stream=None, readonly=False, nbytes=None):
        import numpy as np
        host = np.asarray(host)
        self.dev, self.host_dtype = dev, host.dtype
        size = nbytes if nbytes is not None else max(1, host.nbytes)
        self.ptr = dev.alloc(size)
        dev.to_device(self.ptr, np.ascontiguousarray(host).ctypes.data, host.nbytes)
        self.__cuda_array_interface__ = {
            "version": 3, "shape": host.shape, "typestr": host.dtype.str,
            "data": (self.ptr, readonly), "strides": strides, "stream": stream}

    def read(self, shape=None, dtype=None):
        """The device memory as a C-contiguous numpy array."""
        import numpy as np
        cai = self.__cuda_array_interface__
        out = np.empty(shape or cai["shape"], dtype or cai["typestr"])
        self.dev.to_host(out.ctypes.data, self.ptr, out.nbytes)
        return out
