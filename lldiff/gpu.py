"""`lldiff.vectorize(f, target="cuda")`: the elementwise map as a GPU kernel.

A call binds and types its arguments as the CPU map does (batch.py), asks the dispatcher
for the kernel's PTX for the device's architecture (made once per specialization and arch,
codegen/nvptx.py), stages the arguments and launches the kernel through the CUDA driver
(runtime/cudadrv.py), whose module cache loads each PTX text once per device.

Arguments: numpy arrays and numbers are copied to the device; objects with
`__cuda_array_interface__` (CuPy, PyTorch, numba-cuda, lldiff's DeviceArray) are read in place
after waiting for the stream they name. A device argument must be C-contiguous with the
broadcast shape, 1-D of the broadcast length with any element stride, or hold one element
(broadcast); anything else is a ValueError (materializing a broadcast on the device is the
caller's). Results are numpy arrays when every argument is on the host, DeviceArrays when one
is on the device, or the arrays given in `out=` (numpy or device, C-contiguous).

Failures: the kernel records the first failing element; that element is recomputed by the CPU
map to raise the exception the CPU would raise for it. If the CPU computes it (a reverse-mode
tape outgrew a GPU thread's buffer), the GPU's own error is raised.

Owns staging, launch parameters and failure recovery for GPU maps. Must not build IR or call
libcuda directly.
"""

import builtins
import ctypes
import math

from .batch import arg_type, broadcast, flat_input, host_array, result_dtype

__all__ = ["call"]

BLOCK = 256  # threads per block: a multiple of the warp, and small enough for 4 KB tapes


def _device(ordinal):
    """The device a map runs on (tests substitute an emulated one)."""
    from .runtime import cudadrv
    return cudadrv.device(ordinal)


_TYPESTRS = {"f8": "f", "i8": "i", "u8": "u", "b1": "b"}


class _Arg:
    """A staged argument: device address, element stride (0 broadcasts one element), and
    where its element i can be read back for recovery."""

    def __init__(self, name, dtype, shape, host=None, ptr=0, strides=None):
        self.name, self.dtype, self.shape = name, dtype, shape
        self.host, self.ptr, self.strides = host, ptr, strides
        self.step = 0
        self.owned = None  # a DeviceArray holding the host array's copy

    @property
    def type(self):
        return arg_type(self)


def _device_arg(where, name, cai, dev):
    import numpy as np
    typestr = cai["typestr"]
    if typestr[0] not in "<|" or typestr[1:] not in _TYPESTRS:
        raise TypeError(f"{where}: argument '{name}' is a device array of typestr "
                        f"{typestr!r}; device arrays of float64, int64 or bool are mapped "
                        "(convert it on the device first)")
    if cai.get("mask") is not None:
        raise ValueError(f"{where}: argument '{name}' is a masked device array")
    if cai.get("stream") is not None:
        dev.wait_stream(cai["stream"])
    return _Arg(name, np.dtype(typestr), tuple(cai["shape"]), ptr=cai["data"][0],
                strides=cai.get("strides"))


def _stage_host(args, shape, dev, n):
    """Copy the host arguments over (setting `a.ptr` / `a.step`): each array to a block of
    its own; numbers (one element, broadcast) packed into one block with the failure flag
    (slot 0, holding `n`: no element failed), so a call makes one copy for all of them.
    Returns that block; the flag is at its address."""
    import numpy as np
    from .runtime.cudadrv import DeviceArray
    slots, packed = [np.int64(n).tobytes()], []
    for a in args:
        if a.host is None:
            continue
        flat, a.step = flat_input(a.host, shape)
        if a.step == 0:
            packed.append((a, 8 * len(slots)))
            slots.append(flat.tobytes().ljust(8, b"\0"))
        else:
            a.owned = DeviceArray(dev, flat.shape, flat.dtype)
            dev.to_device(a.owned.ptr, flat.ctypes.data, flat.nbytes)
            a.ptr = a.owned.ptr
    host = ctypes.create_string_buffer(b"".join(slots), 8 * len(slots))
    block = DeviceArray(dev, (len(host),), np.uint8)
    dev.to_device(block.ptr, ctypes.addressof(host), len(host))
    for a, offset in packed:
        a.ptr = block.ptr + offset
    return block


def _stage_device(where, a, shape):
    """Set `a.step` for device argument `a` over `shape`."""
    item = a.dtype.itemsize
    size = math.prod(a.shape)
    contiguous = a.strides is None or tuple(a.strides) == _c_strides(a.shape, item)
    if size == 1:
        a.step = 0
    elif a.shape == shape and contiguous:
        a.step = 1
    elif len(a.shape) == 1 and a.shape == shape and a.strides[0] % item == 0:
        a.step = a.strides[0] // item
    else:
        raise ValueError(f"{where}: argument '{a.name}' is a device array of shape {a.shape}"
                         f" and strides {a.strides}; on the device, arguments must be "
                         f"C-contiguous of the broadcast shape {shape}, 1-D of its length, or "
                         "hold one element (copy or broadcast it on the device first)")


def call(v, values, out):
    """Run vectorized `v` (target "cuda") on bound arguments `values` with `out=`."""
    import numpy as np
    where = v.__name__
    dev = _device(v.device)
    args = []
    for name, x in values:
        cai = getattr(x, "__cuda_array_interface__", None)
        if cai is not None:
            args.append(_device_arg(where, name, cai, dev))
        else:
            h = host_array(where, name, x)
            args.append(_Arg(name, h.dtype, h.shape, host=h))
    on_device = any(a.host is None for a in args)
    types = tuple(a.type for a in args)
    shape = broadcast(where, [a.shape for a in args])
    plan = v.plan(types)
    for s in plan.seeds:
        h = np.array(s)
        args.append(_Arg("(tangent seed)", h.dtype, (), host=h))
    code, name, rtypes, errors = v.d._gpu_kernel(
        types, *plan.kernel, arch=dev.arch, emulate=getattr(dev, "emulated", False))
    fn = dev.function(code, name)
    n = math.prod(shape)
    for a in args:
        if a.host is None:
            _stage_device(where, a, shape)
    outs, results, copies = _outputs(where, out, shape, [result_dtype(t) for t in rtypes],
                                     on_device, dev, v.used(plan, rtypes))
    failed = _stage_host(args, shape, dev, n)
    if n:
        params = [ctypes.c_int64(n)]
        for a in args:
            params += [ctypes.c_uint64(a.ptr), ctypes.c_int64(a.step)]
        params += [ctypes.c_uint64(_ptr(o)) for o in outs]
        params.append(ctypes.c_uint64(failed.ptr))
        dev.launch(fn, dev.grid(n, BLOCK), BLOCK, params)
        index = ctypes.c_int64()
        dev.to_host(ctypes.addressof(index), failed.ptr, 8)
        index = index.value
        if index < n:
            _recover(v, args[:len(values)], shape, index, errors, dev)
    for host, o in copies:
        o.copy_to_host(host)
    return v.results(results, plan, rtypes)


def _ptr(o):
    return o.__cuda_array_interface__["data"][0]


def _outputs(where, out, shape, dtypes, on_device, dev, used):
    """(device arrays the kernel writes, the arrays the call returns, [(numpy array, device
    array) to copy back after the kernel]). Without out=, results the call does not return
    (`used`: a gradient's values) stay on the device: no host array, no copy."""
    import numpy as np
    from .runtime.cudadrv import DeviceArray
    if out is None:
        outs = [DeviceArray(dev, shape, dt) for dt in dtypes]
        if on_device:
            return outs, outs, []
        copies = [(np.empty(shape, dt) if k in used else None, o)
                  for k, (dt, o) in enumerate(zip(dtypes, outs))]
        return outs, [host for host, _ in copies], [c for c in copies if c[0] is not None]
    given = list(out) if isinstance(out, tuple) else [out]
    if len(given) != len(dtypes):
        raise ValueError(f"{where}: out= needs {len(dtypes)} arrays, got {len(given)}")
    outs, copies = [], []
    for k, (o, dt) in enumerate(zip(given, dtypes)):
        cai = getattr(o, "__cuda_array_interface__", None)
        bad = ValueError(f"{where}: out[{k}] must be a writeable C-contiguous "
                         f"{np.dtype(dt)} array of shape {shape} (numpy or on the device)")
        if cai is not None:
            contiguous = cai.get("strides") is None or \
                tuple(cai["strides"]) == _c_strides(shape, np.dtype(dt).itemsize)
            if tuple(cai["shape"]) != shape or np.dtype(cai["typestr"]) != np.dtype(dt) or \
                    cai["data"][1] or not contiguous:
                raise bad
            outs.append(o)
        elif isinstance(o, np.ndarray):
            if o.shape != shape or o.dtype != dt or not o.flags.c_contiguous or \
                    not o.flags.writeable:
                raise bad
            d = DeviceArray(dev, shape, dt)
            outs.append(d)
            copies.append((o, d))
        else:
            raise bad
    return outs, given, copies


def _c_strides(shape, item):
    strides, step = [], item
    for extent in reversed(shape):
        strides.append(step)
        step *= extent
    return tuple(reversed(strides))


def _recover(v, args, shape, index, errors, dev):
    """Raise the exception element `index` raises: the CPU map's for it, else the GPU's."""
    import numpy as np
    from .batch import _Vectorized
    at = np.unravel_index(index, shape) if shape else ()
    scalars = []
    for a in args:
        if a.host is not None:  # its own index under broadcasting
            lead = len(shape) - a.host.ndim
            scalars.append(a.host[tuple(0 if e == 1 else i
                                        for i, e in zip(at[lead:], a.host.shape))])
        else:
            x = np.empty((), a.dtype)
            dev.to_host(x.ctypes.data, a.ptr + index * a.step * a.dtype.itemsize, x.nbytes)
            scalars.append(x)
    _Vectorized(v.d, 1, v.gradient)(*scalars)  # raises what the CPU raises for it
    gpu = [(exc, msg) for exc, msg in errors if "GPU" in msg]
    exc, msg = gpu[0] if gpu else ("RuntimeError", "it failed on the GPU but not on the CPU")
    raise getattr(builtins, exc)(f"element {index}: {msg}")
