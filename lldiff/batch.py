"""`lldiff.vectorize`: a compiled scalar function applied elementwise over numpy arrays.

The loop is native (codegen/kernel.py, or codegen/spmd.py running W elements at a time in
SIMD lanes): no Python per element, with the GIL released (ctypes releases it around foreign
calls), on `threads` threads: the calling thread and helpers kept between calls, each making
one call of the kernel's worker, which takes chunks from a shared counter in native code. The
helpers wait in native code (`_NativePool`, POSIX) or, elsewhere and with progress=True (a
Python loop over chunks moves the bar), in Python (`_Pool`). Inputs broadcast
as numpy broadcasts them; results are new arrays of the broadcast shape, or the arrays given
in `out=`. Results equal scalar calls bit for bit (lanes run the scalar code's operations).

Owns argument handling for the batch call; compiling is the dispatcher's (`_map_kernel`).
"""

import builtins
import os
import threading

from .progress import Bar

__all__ = ["vectorize"]

_MIN_CHUNK = 4096  # elements per thread below which one thread does the whole map


class _Pool:
    """Helper threads kept between calls: starting and joining two threads per call cost
    ~230 us here, more than a 10^4-element map. `run(work, k)` runs `work` on the calling
    thread and offers it to k helpers. When the caller's `work` returns, `work` is done
    but for what helpers already took (the chunks are taken from a shared counter), so
    the offer is withdrawn from helpers that have not started -- waking one costs ~70 us
    here, longer than a small map -- and `run` waits only for those that have. Several
    callers may share the pool. Threads are daemons, made on first use and again in a
    forked child (which has none of its parent's threads)."""

    def __init__(self):
        self._reset()
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._reset)

    def _reset(self):
        import queue
        self.lock = threading.Lock()
        self.jobs = queue.SimpleQueue()
        self.size = 0

    def run(self, work, k):
        import queue
        with self.lock:
            while self.size < k:
                threading.Thread(target=self._serve, args=(self.jobs,), daemon=True,
                                 name=f"lldiff-vectorize-{self.size}").start()
                self.size += 1
        job = _Job(work, queue.SimpleQueue())
        for _ in range(k):
            self.jobs.put(job)
        errors = []
        try:
            work()
        except BaseException as e:  # (KeyboardInterrupt too: wait for the helpers first)
            errors.append(e)
        with job.lock:
            job.open = False
            started = job.started
        for _ in range(started):
            e = job.done.get()
            if e is not None:
                errors.append(e)
        if errors:
            raise errors[0]

    @staticmethod
    def _serve(jobs):
        while True:
            job = jobs.get()
            with job.lock:
                if not job.open:
                    continue
                job.started += 1
            try:
                job.work()
            except BaseException as e:
                job.done.put(e)
            else:
                job.done.put(None)


class _Job:
    __slots__ = ("work", "done", "lock", "open", "started")

    def __init__(self, work, done):
        self.work, self.done = work, done
        self.lock = threading.Lock()
        self.open, self.started = True, 0


_POOL = _Pool()


class _NativePool:
    """Helper threads for map workers that wait in native code (codegen/kernel.py
    `emit_pool`): each is a daemon thread making one foreign call, a kernel's `serve`, that
    never returns; a caller makes one foreign call, the kernel's `run`, which wakes k of
    them with a signal each, runs its own share and waits for those that started -- no GIL
    changes hands. (The Python pool's helpers each took the GIL in turn to start: one handoff
    apart, ~70 us on a VM, so 15 helpers were still starting 1 ms later.) The pool's state
    (a pthread mutex and two conditions) is malloc'd and never freed, and the code the
    helpers sleep in is kept for the process's life: they outlive every Python object. A
    forked child starts a new pool (the parent's mutex may be held by a thread the child
    does not have). POSIX only (`supported`); elsewhere the Python pool runs the workers."""

    def __init__(self):
        self._reset()
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._reset)
        self._libc = None

    def _reset(self):
        self.lock = threading.Lock()
        self.state = None
        self.size = 0
        self.helpers = []  # (keeps the ctypes functions the threads run)

    def supported(self):
        if self._libc is None:
            import ctypes
            try:
                libc = ctypes.CDLL(None)
                libc.calloc.restype = ctypes.c_void_p
                libc.calloc.argtypes = [ctypes.c_size_t, ctypes.c_size_t]
                for name in ("pthread_mutex_init", "pthread_cond_init"):
                    getattr(libc, name).argtypes = [ctypes.c_void_p, ctypes.c_void_p]
                self._libc = libc if os.name == "posix" else False
            except (OSError, AttributeError):
                self._libc = False
        return bool(self._libc)

    def run(self, kernel, job, k):
        """Run `job` (a ctypes array: codegen/kernel.py's job layout) on the calling thread
        and k helpers."""
        _, run, serve = kernel._lldiff_pool
        if self.size < k:
            self._grow(kernel, serve, k)
        run(self.state, job, k)

    def _grow(self, kernel, serve, k):
        import ctypes
        with self.lock:
            if self.state is None:
                libc = self._libc
                state = libc.calloc(1, _POOL_BYTES)
                if not state:
                    raise MemoryError("vectorize: no memory for the thread pool's state")
                if libc.pthread_mutex_init(state, None) or \
                        libc.pthread_cond_init(state + _POOL_WAKE, None) or \
                        libc.pthread_cond_init(state + _POOL_DONE, None):
                    raise OSError("vectorize: pthread_mutex_init / pthread_cond_init failed")
                self.state = state
            if self.size < k:
                # the helpers will sleep in this library's code: never free it
                ctypes.pythonapi.Py_IncRef(ctypes.py_object(kernel._lldiff_library))
                fn = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(serve)
                self.helpers.append(fn)
            while self.size < k:
                threading.Thread(target=fn, args=(self.state,), daemon=True,
                                 name=f"lldiff-map-{self.size}").start()
                self.size += 1


# codegen/kernel.py's POOL_BYTES, POOL_WAKE, POOL_DONE and JOB_SLOTS
_POOL_BYTES, _POOL_WAKE, _POOL_DONE, _JOB_SLOTS = 256, 64, 128, 12
_NATIVE = _NativePool()


def vectorize(f, threads=None, progress=False, target="cpu", device=0, simd=True):
    """Return a function applying `f` (a plain or @lldiff.jit function of scalars, a
    `lldiff.grad` / `lldiff.value_and_grad` / `lldiff.jacfwd` of one, or a `@jit_grad`
    function) elementwise over numpy arrays and numbers, with broadcasting:
    `vf(x, y, out=None)`. A derivative map returns what the scalar call returns, with arrays
    in place of numbers (`out=` then takes the kernel's arrays: values first, then the
    derivatives); `jacfwd` maps the forward-mode (jvp) code, the others the reverse.
    `threads` (default: the number of CPUs) splits the elements across native threads with
    the GIL released. `progress=True` draws a progress bar on stderr while a map runs
    (nothing is printed by default).

    On the CPU the map runs W elements at a time in SIMD lanes (W = 16 f64 lanes with
    AVX-512: two registers; 8 with AVX2) when the function has an SPMD form
    (passes/spmd.py: no arrays inside, no custom rules); arguments given as single numbers
    stay scalars in that code. Results
    equal the scalar loop's bit for bit (every lane runs the scalar code's operations; libm
    functions are called lane by lane). `simd=False` runs the scalar loop.

    `target="cuda"` runs the map as a GPU kernel on CUDA device `device` (lldiff/gpu.py):
    numpy arguments are copied to the device and results come back as numpy arrays;
    arguments with `__cuda_array_interface__` (CuPy, PyTorch, numba-cuda arrays) are read
    where they are, and results then stay on the device as `lldiff.DeviceArray`s (`out=`
    takes numpy or device arrays). Needs an NVIDIA driver (CudaDriverError without one) and
    libdevice (`pip install lldiff[cuda]`)."""
    from .ad import _dispatcher
    from .api import JitGrad
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise ValueError(f"lldiff.vectorize: threads must be a positive int, got {threads!r}")
    threads = threads or os.cpu_count() or 1
    if target not in ("cpu", "cuda"):
        raise ValueError(f"lldiff.vectorize: target must be 'cpu' or 'cuda', got {target!r}")
    if not isinstance(device, int) or isinstance(device, bool) or device < 0:
        raise ValueError(f"lldiff.vectorize: device must be a CUDA device ordinal (an int "
                         f">= 0), got {device!r}")
    grad = getattr(f, "_lldiff_grad", None)
    fwd = getattr(f, "_lldiff_jacfwd", None)
    if fwd is not None:  # lldiff.jacfwd of a function: forward mode, one tangent per argnum
        d, nums, single = fwd
        v = _Vectorized(d, threads, _Forward(nums, single), target, device)
    elif grad is not None:  # lldiff.grad / value_and_grad of a function
        d, nums, single, has_aux, value = grad
        v = _Vectorized(d, threads, _Gradient(nums, single, has_aux, value), target, device)
    elif isinstance(f, JitGrad):  # (value, gradient w.r.t. every float argument)
        v = _Vectorized(f, threads, _Gradient(None, False, False, True), target, device)
    else:
        v = _Vectorized(_dispatcher(f, "vectorize"), threads, None, target, device)
    v.progress = bool(progress)
    v.simd = bool(simd)
    return v


class _Gradient:
    """How a vectorized gradient picks its results from the kernel's (y..., gradients)."""

    def __init__(self, nums, single, has_aux, value):
        self.nums, self.single, self.has_aux, self.value = nums, single, has_aux, value

    def mask(self, types):
        nums = self.nums if self.nums is not None else \
            tuple(i for i, t in enumerate(types) if t.is_float)
        for k in nums:
            if k >= len(types) or not types[k].is_float:
                raise TypeError(f"lldiff.vectorize: argument {k} is not a float array or "
                                "number; only those are differentiated")
        return nums, tuple(i in nums for i in range(len(types)))

    def shape(self, outs, nums, n_results):
        ys, grads = outs[:n_results], outs[n_results:]
        by_arg = dict(zip(sorted(nums), grads))
        g = [by_arg[k] for k in nums]
        g = g[0] if (self.single or len(g) == 1 and self.nums is None) else tuple(g)
        if self.nums is None:  # jit_grad: (value, gradient)
            return ys[0], g
        y = ys[0]
        if self.has_aux:
            aux = ys[1] if len(ys) == 2 else tuple(ys[1:])
            return ((y, aux), g) if self.value else (g, aux)
        return (y, g) if self.value else g


class _Forward(_Gradient):
    """A vectorized `jacfwd`: the jvp kernel with one unit tangent per argnum (broadcast
    constants), results (y..., len(nums) tangents per float y) -> jacfwd's shape."""

    def __init__(self, nums, single):
        super().__init__(nums, single, False, False)

    def seeds(self, mask):
        """The tangent inputs, in the jvp's argument order: per masked argument, one per
        direction (the argnums, in order)."""
        return [1.0 if j == i else 0.0 for i, m in enumerate(mask) if m for j in self.nums]

    def shape(self, outs, nums, n_results, rtypes=None):
        width = len(nums)
        rest = iter(outs[n_results:])
        blocks = []
        for t in rtypes[:n_results]:
            if not t.is_float:
                blocks.append(None)
                continue
            cols = [next(rest) for _ in range(width)]
            blocks.append(cols[0] if self.single else tuple(cols))
        return blocks[0] if len(blocks) == 1 else tuple(blocks)


class _Plan:
    def __init__(self, kernel, seeds=(), nums=None, n_results=None):
        self.kernel = kernel  # (mask, seeded, width) arguments of the dispatcher's map kernels
        self.seeds, self.nums, self.n_results = seeds, nums, n_results
        self.used = None  # which kernel results the call returns (_Vectorized.used)


class _Mark:
    __slots__ = ("k",)

    def __init__(self, k):
        self.k = k


_KINDS = {}  # dtype kind -> IR type, and IR type -> result dtype (filled on first use: the
# imports stay lazy, and a call pays a dict lookup, not an import statement)


def _kinds():
    if not _KINDS:
        import numpy as np

        from .ir import F64, I1, I64
        _KINDS.update({"f": F64, "i": I64, "u": I64, "b": I1,
                       F64: np.dtype(np.float64), I64: np.dtype(np.int64), I1: np.dtype(np.bool_)})
    return _KINDS


def arg_type(a):
    """The IR type of a mapped argument from its numpy array (of host_array's dtypes)."""
    return _kinds()[a.dtype.kind]


def result_dtype(t):
    """The numpy dtype of a kernel result of IR type `t`."""
    return _kinds()[t]


def _is_dask(v):
    return type(v).__module__.startswith("dask.") and hasattr(v, "chunks")


def host_array(where, name, v):
    """Argument `name` as a numpy array of float64, int64 or bool; TypeError otherwise."""
    import numpy as np
    a = np.asarray(v)
    kind = a.dtype.kind
    if kind not in "fiub":
        raise TypeError(f"{where}: argument '{name}' has dtype {a.dtype}; numbers or arrays "
                        "of floats, ints or bools are mapped")
    return np.asarray(a, dtype=np.float64 if kind == "f" else np.int64 if kind in "iu" else
                      np.bool_)


def flat_input(a, shape):
    """(contiguous 1-D array, element stride) a map kernel reads argument `a` from over the
    broadcast `shape`: one element with stride 0 (broadcast), the array itself, or for
    partial broadcasting a materialized copy (correct for every layout)."""
    import numpy as np
    if a.size == 1:
        return np.ascontiguousarray(a).reshape(1), 0
    if a.shape == shape and a.flags.c_contiguous:
        return a.reshape(-1), 1
    return np.ascontiguousarray(np.broadcast_to(a, shape)).reshape(-1), 1


def broadcast(where, shapes):
    import numpy as np
    try:
        return np.broadcast_shapes(*shapes)
    except ValueError as e:
        raise ValueError(f"{where}: arguments do not broadcast: {e}") from None


class _Vectorized:
    def __init__(self, d, threads, gradient=None, target="cpu", device=0):
        self.d = d
        self.threads = threads
        self.gradient = gradient
        self.target = target
        self.device = device
        self.progress = False
        self._plans = {}  # argument types -> _Plan
        self.simd = True
        self.__name__ = f"vectorize({d.__name__})"
        self.__doc__ = f"{d.__name__} applied elementwise over arrays (lldiff.vectorize)."

    def __repr__(self):
        return f"<lldiff.vectorize {self.d.__name__}>"

    def __call__(self, *args, out=None):
        values = self.d._bind(args, {})
        if self.target == "cuda":
            from . import gpu
            return gpu.call(self, values, out)
        if any(_is_dask(v) for _, v in values):
            if out is not None:
                raise ValueError(f"{self.__name__}: out= is not supported with dask arrays")
            return self._dask(values)
        outs, plan, rtypes = self._map(values, out)
        return self.results(outs, plan, rtypes)

    def _dask(self, values):
        """The map over dask arrays, block by block (lazy: a dask array, or a tuple of them
        shaped as the call's result): dask.array.map_blocks for one result, apply_gufunc
        (its several-outputs form) for more."""
        import dask.array as da
        names = [name for name, _ in values]
        args = [v if _is_dask(v) else host_array(self.__name__, name, v) for name, v in values]
        types = [arg_type(a) for a in args]
        # numpy arrays take part in the block structure (broadcast blocks); numbers go whole
        args = [a if _is_dask(a) or a.ndim == 0 else da.asarray(a) for a in args]
        plan = self.plan(types)
        rtypes = self.d._map_spec(tuple(types), *plan.kernel).func.result_types
        dtypes = [result_dtype(t) for t in rtypes]

        def block(*blocks):
            outs = self._map(list(zip(names, blocks)), None)[0]
            return outs[0] if len(outs) == 1 else tuple(outs)

        if len(dtypes) == 1:
            outs = [da.map_blocks(block, *args, dtype=dtypes[0])]
        else:
            outs = list(da.apply_gufunc(block, ",".join(["()"] * len(args)) + "->" +
                                        ",".join(["()"] * len(dtypes)), *args,
                                        output_dtypes=dtypes, vectorize=False))
        return self.results(outs, plan, rtypes)

    def _map(self, values, out):
        """(result arrays, plan, result types) of the map over numpy arrays and numbers."""
        import numpy as np
        arrays = [host_array(self.__name__, name, v) for name, v in values]
        types = [arg_type(a) for a in arrays]
        shape = broadcast(self.__name__, [a.shape for a in arrays])
        plan = self.plan(types)
        arrays += [np.array(s) for s in plan.seeds]
        n = 1
        for s in shape:
            n *= s
        ins, in_strides, keep = [], [], []
        for a in arrays:
            flat, step = flat_input(a, shape)
            keep.append(flat)
            ins.append(flat.ctypes.data)
            in_strides.append(step)
        # SIMD lanes: the kernel is made for which arguments are the same for every element
        uniform = tuple(s == 0 for s in in_strides) if self.simd else None
        kernel, rtypes, errors = self.d._map_kernel(tuple(types), *plan.kernel,
                                                    uniform=uniform)
        outs = self._outs(out, shape, [result_dtype(t) for t in rtypes])
        flats = [o.reshape(-1) for o in outs]
        self._run(kernel, n, ins, in_strides, flats, errors)
        return outs, plan, rtypes

    def plan(self, types):
        """What the map of these argument types runs: the kernel variant, the constant seed
        inputs appended to the arguments, and how the results are shaped (made once per
        `types`)."""
        types = tuple(types)
        got = self._plans.get(types)
        if got is None:
            got = self._plans[types] = self._plan(types)
        return got

    def _plan(self, types):
        if self.gradient is None:
            return _Plan(())
        nums, mask = self.gradient.mask(types)
        n_results = self.d._result_count(tuple(types))
        if isinstance(self.gradient, _Forward):
            return _Plan((mask, None, len(nums)), self.gradient.seeds(mask), nums, n_results)
        return _Plan((mask, tuple(i == 0 for i in range(n_results))), (), nums, n_results)

    def results(self, outs, plan, rtypes):
        """The call's return value from the kernel's result arrays."""
        if isinstance(self.gradient, _Forward):
            return self.gradient.shape(outs, plan.nums, plan.n_results, rtypes)
        if self.gradient is not None:
            return self.gradient.shape(outs, plan.nums, plan.n_results)
        if not outs:
            return None
        return outs[0] if len(outs) == 1 else tuple(outs)

    def used(self, plan, rtypes):
        """The indices of the kernel results the call returns: all but the values, for a
        gradient map (what a GPU map need not copy back)."""
        if plan.used is None:
            found = set()

            def walk(x):
                if isinstance(x, _Mark):
                    found.add(x.k)
                elif isinstance(x, tuple):
                    for y in x:
                        walk(y)
            walk(self.results([_Mark(k) for k in range(len(rtypes))], plan, rtypes))
            plan.used = frozenset(found)
        return plan.used

    def _outs(self, out, shape, dtypes):
        import numpy as np
        if out is None:
            return [np.empty(shape, dt) for dt in dtypes]
        outs = list(out) if isinstance(out, tuple) else [out]
        if len(outs) != len(dtypes):
            raise ValueError(f"{self.__name__}: out= needs {len(dtypes)} arrays, got "
                             f"{len(outs)}")
        for k, (o, dt) in enumerate(zip(outs, dtypes)):
            if not isinstance(o, np.ndarray) or o.shape != shape or o.dtype != dt or \
                    not o.flags.c_contiguous or not o.flags.writeable:
                raise ValueError(f"{self.__name__}: out[{k}] must be a writeable C-contiguous "
                                 f"{np.dtype(dt)} array of shape {shape}")
        return outs

    def _run(self, kernel, n, ins, in_strides, flats, errors):
        import ctypes
        c_ins = (ctypes.c_void_p * max(1, len(ins)))(*ins)
        c_in_strides = (ctypes.c_int64 * max(1, len(ins)))(*in_strides)
        c_outs = (ctypes.c_void_p * max(1, len(flats)))(*[f.ctypes.data for f in flats])
        c_out_strides = (ctypes.c_int64 * max(1, len(flats)))(*[1] * len(flats))
        threads = max(1, min(self.threads, n // _MIN_CHUNK))
        failures = []

        def run(lo, hi):
            failed = ctypes.c_int64(-1)
            status = kernel(lo, hi, c_ins, c_in_strides, c_outs, c_out_strides,
                            ctypes.byref(failed))
            if status:
                failures.append((failed.value, status))

        bar = Bar(self.__name__, n) if self.progress else None
        # chunks taken in turn from a shared counter: elements can cost very different
        # amounts (a series that converges later), so fixed halves would leave a thread idle
        chunk = max(_MIN_CHUNK, n // (threads * 16))
        worker = getattr(kernel, "_lldiff_worker", None)
        if threads == 1 and bar is None:
            run(0, n)
        elif bar is None and hasattr(kernel, "_lldiff_pool") and _NATIVE.supported():
            # the chunk loop in native code, on the native pool
            results = (ctypes.c_int64 * (2 * threads))()  # (status, failed) per thread
            at = ctypes.addressof
            job = (ctypes.c_int64 * _JOB_SLOTS)(  # codegen/kernel.py's job layout
                kernel._lldiff_pool[0], n, chunk, 0, at(c_ins), at(c_in_strides), at(c_outs),
                at(c_out_strides), 0, 0, 0, at(results))
            _NATIVE.run(kernel, job, threads - 1)
            failures += [(results[2 * t + 1], results[2 * t]) for t in range(threads)
                         if results[2 * t]]
        elif bar is None and worker is not None:  # the chunk loop in native code
            counter = ctypes.c_int64(0)

            def work():
                failed = ctypes.c_int64(-1)
                status = worker(n, chunk, ctypes.byref(counter), c_ins, c_in_strides, c_outs,
                                c_out_strides, ctypes.byref(failed))
                if status:
                    failures.append((failed.value, status))
            _POOL.run(work, threads - 1)
        else:  # the chunk loop in Python, which can move a progress bar
            nxt = [0]
            lock = threading.Lock()

            def work():
                while True:
                    with lock:
                        lo = nxt[0]
                        nxt[0] = lo + chunk
                    if lo >= n:
                        return
                    run(lo, min(n, lo + chunk))
                    if bar is not None:
                        bar.add(min(n, lo + chunk) - lo)
            _POOL.run(work, threads - 1)
        if bar is not None:
            bar.close()
        if failures:
            index, status = min(failures)
            exc, msg = errors[status - 1] if 0 < status <= len(errors) else \
                ("SystemError", "unknown error status from native code")
            raise getattr(builtins, exc)(msg)
