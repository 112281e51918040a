"""The public entry points (`jit`) and the one place that ties the layers together.

A `Dispatcher` wraps a Python function. Each call's argument types (float, int, bool) select
a specialization, compiled once: frontend -> passes -> codegen -> runtime. The first
specialization's native entry point becomes the dispatcher's `__call__` (a builtin, so a call
costs tens of nanoseconds); calls it does not handle fall back to `_dispatch`, which binds
arguments like Python, specializes and calls.
"""

import inspect as _inspect
import os
import sys
import threading
import time

from .errors import CompileError

__all__ = ["jit", "jit_grad", "Dispatcher", "JitGrad", "OPT_DEFAULT"]

# O2 and O3 produce the same Bessel loop here and O2 compiles faster (benchmarks/README.md).
OPT_DEFAULT = 2
_STAGES = ("ir", "jvp", "vjp", "llvm", "llvm-opt", "asm", "ptx", "spmd")
_lock = threading.RLock()
_symbol_counter = [0]


def jit(fn=None, *, opt=None, verify=None, boundscheck=None, cache=False, fastmath=False):
    """Compile `fn` lazily for each argument-type signature it is called with.

    opt: LLVM optimization level 0-3 (default 2, or $LLDIFF_OPT).
    verify: run the IR verifier after every pass (default: $LLDIFF_VERIFY, tests set it).
    boundscheck: array indices out of range raise IndexError (default: $LLDIFF_BOUNDSCHECK;
    off, they are undefined behaviour, as in numba).
    fastmath: let LLVM reassociate and contract float arithmetic (sums vectorize into partial
    sums; results may differ from Python's order in the last bits; NaN and infinities keep
    their meaning), in the function and the functions it calls, and in its derivatives; and
    let `lldiff.vectorize` call glibc's vector math library (libmvec) in SIMD lanes, within
    4 ulp of the C library's sin, exp, ... (without fastmath: libm lane by lane, exact).
    cache: keep the machine code on disk ($LLDIFF_CACHE_DIR, else ~/.cache/lldiff) and load
    it in later processes instead of compiling (lldiff/caching.py says what the key covers).
    """
    if opt is None:
        opt = int(os.environ.get("LLDIFF_OPT", OPT_DEFAULT))
    if opt not in (0, 1, 2, 3):
        raise ValueError(f"opt must be 0, 1, 2 or 3, got {opt!r}")
    if verify is None:
        verify = os.environ.get("LLDIFF_VERIFY", "") not in ("", "0")
    if boundscheck is None:
        boundscheck = os.environ.get("LLDIFF_BOUNDSCHECK", "") not in ("", "0")

    def wrap(f):
        if isinstance(f, Dispatcher):
            f = f.py_func
        if not callable(f) or not hasattr(f, "__code__"):
            raise TypeError(f"lldiff.jit expects a Python function, got {type(f).__name__}")
        cls = type(f"jit<{f.__name__}>", (Dispatcher,), {})
        d = cls(f, opt, verify)
        d.boundscheck = bool(boundscheck)
        d.cache = bool(cache)
        d.fastmath = bool(fastmath)
        return d

    return wrap if fn is None else wrap(fn)


class _Specialization:
    __slots__ = ("types", "symbol", "func", "callees", "module", "library", "entry",
                 "entry_address", "compile_time", "llvm_text", "before_tape", "timings",
                 "kind", "variant")

    def __init__(self, types, symbol):
        self.types = types
        self.symbol = symbol
        self.func = None
        self.callees = ()
        self.module = None
        self.library = None
        self.entry = None
        self.entry_address = None
        self.compile_time = 0.0
        self.llvm_text = None
        self.before_tape = None  # vjp: the IR text with abstract ad.push/ad.pop
        self.timings = {}  # stage -> seconds (frontend, pass:<name>, codegen, llvm-*, jit)
        self.kind = "primal"
        self.variant = ("primal",)  # the transformation, as the disk cache keys it

    def rebound(self, fallback):
        """Another builtin of the same native entry point, handing what it refuses to
        `fallback` (a caller's own slow path) instead of the one `entry` has."""
        from .runtime import make_builtin
        return make_builtin(self.entry_address, self.entry.__name__, fallback, self.library)


class Dispatcher:
    """A compiled function: call it like the Python function it wraps."""

    def __init__(self, py_func, opt, verify):
        self.py_func = py_func
        self.opt = opt
        self.verify = verify
        self.boundscheck = False
        self.cache = False
        self.fastmath = False
        self._custom = None  # ("jvp" | "vjp", rule Dispatcher): lldiff/custom.py
        self._in_rule = 0  # > 0 while the rule's IR is built
        self._hits = {}  # (signature, variant) -> disk-cache entry (entry point, writes), or
        # None: not in the cache (this process compiles and stores it)
        self.__name__ = py_func.__name__
        self.__qualname__ = py_func.__qualname__
        self.__doc__ = py_func.__doc__
        self.__module__ = py_func.__module__
        self.__wrapped__ = py_func
        self._signature = _inspect.signature(py_func)
        params = self._signature.parameters.values()
        # the common call, every parameter given by position: bound without inspect (~15 us)
        self._positional = tuple(p.name for p in params) if all(
            p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params) else None
        self._specs = {}
        self._in_progress = {}  # types -> the specialization whose IR is being built
        self._derivs = {}
        self._maps = {}  # scalar types -> lldiff.vectorize's kernel
        self._plans = {}  # lldiff.ad's per-call-shape fast paths
        self._source = None
        self.compile_time = 0.0

    def __repr__(self):
        return f"<lldiff.jit {self.py_func.__qualname__}>"

    def __get__(self, obj, objtype=None):
        return self  # behaves like a staticmethod when stored on a class

    def __reduce__(self):
        from .pickling import reduce_dispatcher
        return reduce_dispatcher(self)

    # --- calling ------------------------------------------------------------------------

    def __call__(self, *args, **kwargs):
        return self._dispatch(*args, **kwargs)

    def _dispatch(self, *args, **kwargs):
        values = self._bind(args, kwargs)
        if self.cache:
            hit = self._cached(values, ("primal",))
            if hit is not None:
                _check_arrays(self.__name__, values, hit[1])
                return hit[0](*[v for _, v in values])
        types = tuple(self._arg_type(name, v) for name, v in values)
        spec = self._native(types)
        _check_arrays(self.__name__, values, spec.func.attrs.get("writes", ()))
        return spec.entry(*[_canonical(v) for _, v in values])

    def _bind(self, args, kwargs):
        names = self._positional
        if not kwargs and names is not None and len(args) == len(names):
            return list(zip(names, args))
        try:
            bound = self._signature.bind(*args, **kwargs)
        except TypeError as e:
            raise TypeError(f"{self.__name__}(): {e}") from None
        bound.apply_defaults()
        return list(bound.arguments.items())

    def _arg_type(self, name, v):
        from .frontend import type_of_python_value
        t = type_of_python_value(v)
        if t is None:
            np = _numpy()
            if np is not None and isinstance(v, (np.bool_, np.integer, np.floating)) \
                    and not isinstance(v, np.longdouble):
                t = type_of_python_value(v.item())
        if t is None:
            raise _bad_argument(self.__name__, name, v)
        return t

    def interpret(self, *args, **kwargs):
        """Run the IR reference interpreter on this call (slow; an oracle for tests)."""
        from .ir import interpret
        values = self._bind(args, kwargs)
        types = tuple(self._arg_type(name, v) for name, v in values)
        spec = self._ir(types)
        out = interpret(spec.module, spec.symbol, [_canonical(v) for _, v in values])
        return _pythonize(out, spec.func.result_types)

    # --- specialization -----------------------------------------------------------------

    def _symbol(self, types):
        with _lock:
            _symbol_counter[0] += 1
            n = _symbol_counter[0]
        sig = _signature(types)
        return f"{self.py_func.__name__}.{sig}.{n}"

    def _ir(self, types):
        """The specialization for `types` with its IR built (not yet compiled)."""
        with _lock:
            spec = self._specs.get(types)
            if spec is not None and spec.func is not None:
                return spec
            if types in self._in_progress:
                raise CompileError(f"{self.__name__} calls itself (directly or through other "
                                   "functions); recursion is not supported yet",
                                   hint="rewrite the recursion as a loop")
            self._in_progress[types] = spec = _Specialization(types, self._symbol(types))
            try:
                t0 = time.perf_counter()
                self._build_ir(spec)
                spec.compile_time = time.perf_counter() - t0
                self._specs[types] = spec
                return spec
            finally:
                del self._in_progress[types]

    def _build_ir(self, spec):
        from .frontend import get_source, lower_function
        from .ir import Module, verify
        from .passes import run_pipeline
        t0 = time.perf_counter()
        if self._source is None:
            self._source = get_source(self.py_func)
        func, callees = lower_function(self._source, spec.types, spec.symbol, _resolve_callee,
                                       self.boundscheck)
        spec.timings["frontend"] = time.perf_counter() - t0
        own = Module([func])
        for c in callees:
            if c.name not in own.funcs:
                own.add(c)
        if self.verify:
            verify(own)
        # Callees arrive canonicalized (a fixpoint), so the pass leaves them unchanged.
        run_pipeline(own, "canonicalize", verify=self.verify, timings=spec.timings)
        _mark_writes(own, func)
        spec.func = func
        spec.callees = tuple(c for c in own if c is not func)
        spec.module = own

    def _result_count(self, types):
        """How many results the specialization for `types` returns: from its IR where built,
        else (cache=True) from its disk-cache entry, without building IR."""
        if not self.cache:
            return len(self._ir(types).func.result_types)
        from . import caching
        sig = _signature(types)
        meta = caching.peek(self, sig, ("results",))  # (an entry of metadata alone)
        if meta is not None:
            return meta["results"]
        n = len(self._ir(types).func.result_types)
        caching.store(self, sig, ("results",), {"results": n}, b"")
        return n

    def _native(self, types):
        spec = self._ir(types)
        if spec.entry is not None:
            return spec
        with _lock:
            if spec.entry is None:
                self._compile(spec, self._dispatch)
                self.compile_time = spec.compile_time
                cls = type(self)
                if "__call__" not in cls.__dict__ and cls is not Dispatcher:
                    cls.__call__ = spec.entry  # the fast path: a builtin, not a Python method
        return spec

    def _cached(self, values, variant):
        """(entry point, writes) of the disk-cache entry for these argument values, without
        building IR; None on a miss (the caller compiles, which stores the entry)."""
        from . import caching
        sig = caching.signature(values)
        if sig is None:
            return None
        hit = self._hits.get((sig, variant), False)
        if hit is not False:
            return hit
        with _lock:
            hit = self._hits.get((sig, variant), False)
            if hit is not False:
                return hit
            t0 = time.perf_counter()
            got = caching.fetch(self, sig, variant)
            if got is None:
                self._hits[(sig, variant)] = None  # the compile that follows stores it
                return None
            meta, addresses, owner = got
            from .runtime import make_builtin
            entry = make_builtin(addresses[meta["entry"]], self.__name__, self._dispatch, owner)
            hit = self._hits[(sig, variant)] = (entry, tuple(meta["writes"]))
            if os.environ.get("LLDIFF_TIMING", "") not in ("", "0"):
                sys.stderr.write(f"lldiff: {self.__name__}({sig.replace('_', ', ')}) "
                                 f"{variant[0]}: {(time.perf_counter() - t0) * 1e3:.1f} ms "
                                 "(disk cache)\n")
            cls = type(self)
            if "__call__" not in cls.__dict__ and cls not in (Dispatcher, JitGrad) and \
                    "arr" not in sig:
                cls.__call__ = entry  # the fast path, as after a compile
        return hit

    def _machine_code(self, types, variant, text, exports, meta, timings):
        """Native code of LLVM IR `text` (the specialization for `types`, transformation
        `variant`) with the addresses of `exports`: JIT-compiled, or with cache=True, taken
        from the disk cache or compiled to an object file that is stored there and loaded.
        Returns (owner, addresses)."""
        from .runtime import get_engine, process_imports
        if not self.cache:
            lib = get_engine().compile(text, self.opt, exports, timings=timings,
                                       imports=process_imports(text))
            return lib, lib.addresses
        from . import caching
        sig = _signature(types)
        t0 = time.perf_counter()
        # (a miss in `_cached` for this entry already looked)
        got = None if self._hits.get((sig, variant), False) is None else \
            caching.fetch(self, sig, variant)
        if got is not None:
            timings["disk-cache"] = time.perf_counter() - t0
            meta, addresses, owner = got
            return owner, {e: addresses[m] for e, m in zip(exports, meta["exports"])}
        obj = get_engine().emit_object(text, self.opt, timings=timings)
        t0 = time.perf_counter()
        owner, addresses = caching.load(obj, exports)
        caching.store(self, sig, variant, dict(meta, exports=list(exports)), obj)
        timings["load+store"] = time.perf_counter() - t0
        return owner, addresses

    def _compile(self, spec, fallback):
        """LLVM IR -> native code for `spec.module`, exporting `spec.symbol` as a builtin."""
        from . import codegen
        from .ir import verify
        from .runtime import get_engine, make_builtin
        t0 = time.perf_counter()
        # always, whatever `verify` says: IR a pass got wrong must be a Python exception
        # (VerificationError), never native code
        verify(spec.module)
        text = codegen.emit(spec.module, [spec.symbol], name=spec.symbol,
                            fastmath=self.fastmath)
        spec.timings["codegen"] = time.perf_counter() - t0
        spec.llvm_text = text
        entry_sym = codegen.entry_name(spec.symbol)
        get_engine()  # (its first use loads llvmlite.binding: timed as "llvm-init")
        spec.timings["llvm-init"] = time.perf_counter() - t0 - spec.timings["codegen"]
        meta = {"entry": entry_sym, "writes": list(spec.func.attrs.get("writes", ()))}
        lib, addresses = self._machine_code(spec.types, spec.variant, text, [entry_sym], meta,
                                            spec.timings)
        spec.library = lib
        spec.entry_address = addresses[entry_sym]
        spec.entry = make_builtin(spec.entry_address, self.__name__, fallback, lib)
        spec.compile_time += time.perf_counter() - t0
        if os.environ.get("LLDIFF_TIMING", "") not in ("", "0"):
            _report_timing(self.__name__, spec)

    def _map_kernel(self, types, mask=None, seeded=None, width=None, uniform=None):
        """(ctypes kernel, result types, error table) of the elementwise map of the
        specialization for scalar `types` (lldiff.vectorize), compiled once; with `mask`, of
        its gradient (the "grad" derivative: results y..., then the gradients), or with
        `width` too, of its jvp (arguments x..., then `width` tangents per masked argument;
        results y..., then `width` tangents per float result). With `uniform` (a flag per
        kernel argument: read with stride 0, the others with stride 1), the kernel runs the
        SPMD form in SIMD lanes (passes/spmd.py) where the function has one, else it is the
        scalar kernel."""
        if uniform is not None:
            return self._once(("simd", types, mask, seeded, width, uniform),
                              lambda: self._make_simd_kernel(types, mask, seeded, width,
                                                             uniform))
        return self._once((types, mask, seeded, width),
                          lambda: self._make_map_kernel(types, mask, seeded, width))

    def _make_simd_kernel(self, types, mask, seeded, width, uniform):
        # The lane count and whether pow runs in vector code follow from the machine and its
        # C library, which the disk cache's environment holds (runtime/diskcache.py), and
        # from $LLDIFF_SIMD_LANES: so the variant is known, and a cached kernel found,
        # without LLVM or the IR.
        variant = ("simd", os.environ.get("LLDIFF_SIMD_LANES", ""), uniform) + \
            _map_variant(mask, seeded, width)
        got = self._cached_kernel(types, variant)
        if got is _NO_SPMD:
            return self._map_kernel(types, mask, seeded, width)
        if got is not None:
            got[0]._lldiff_spmd = None  # (an SPMD form ran, not made in this process)
            return got
        from . import codegen
        from .ir import Module
        from .passes.spmd import NotSpmd, spmd_func
        from .runtime import get_engine
        spec = self._map_spec(types, mask, seeded, width)
        assert variant[3:] == spec.variant, (variant, spec.variant)
        lanes = get_engine().simd_lanes()
        try:
            lane_func = spmd_func(spec.module, spec.symbol, uniform, lanes)
        except NotSpmd:
            if self.cache:  # an entry of metadata alone: later processes need not look again
                from . import caching
                caching.store(self, _signature(types), variant,
                              {"no_spmd": True, "exports": []}, b"")
            return self._map_kernel(types, mask, seeded, width)
        module = Module(list(spec.module) + [lane_func])
        vector_math = get_engine().vector_math(codegen.vector_math_functions()) \
            if self.fastmath else None
        vector_pow = get_engine().glibc_pow()
        text, errors = codegen.emit_spmd_map_module(module, spec.symbol, lane_func.name,
                                                    fastmath=self.fastmath,
                                                    name=spec.symbol + ".simd",
                                                    vector_math=vector_math,
                                                    vector_pow=vector_pow)
        sym = codegen.simd_name(spec.symbol)
        rtypes = spec.func.result_types
        kernel = self._load_kernel(types, variant, text, sym, rtypes, errors)
        kernel._lldiff_spmd = lane_func  # (what ran: tests and inspect)
        return kernel, rtypes, errors

    def _once(self, key, make):
        """self._maps[key], made by make() the first time (once, whatever the threads)."""
        got = self._maps.get(key)
        if got is None:
            with _lock:
                got = self._maps.get(key)
                if got is None:
                    got = self._maps[key] = make()
        return got

    def _make_map_kernel(self, types, mask, seeded, width):
        variant = ("map",) + _map_variant(mask, seeded, width)
        got = self._cached_kernel(types, variant)
        if got is not None:
            return got
        from . import codegen
        spec = self._map_spec(types, mask, seeded, width)
        assert variant[1:] == spec.variant, (variant, spec.variant)
        rtypes = spec.func.result_types
        text, errors = codegen.emit_map_module(spec.module, spec.symbol,
                                               fastmath=self.fastmath,
                                               name=spec.symbol + ".map")
        sym = codegen.map_name(spec.symbol)
        return self._load_kernel(types, variant, text, sym, rtypes, errors), rtypes, errors

    def _load_kernel(self, types, variant, text, sym, rtypes, errors):
        """The ctypes map kernel `sym` of LLVM IR `text`, with its worker and native pool
        functions (codegen/kernel.py; see `_kernel`); with cache=True, stored with its result
        types and error table."""
        from . import codegen
        exports = [sym, codegen.worker_name(sym), codegen.run_name(sym),
                   codegen.serve_name(sym)]
        meta = {"results": [str(t) for t in rtypes], "errors": [list(e) for e in errors]}
        lib, addresses = self._machine_code(types, variant, text, exports, meta, {})
        return _kernel(*[addresses[e] for e in exports], lib)

    def _cached_kernel(self, types, variant):
        """(kernel, result types, error table) of a map kernel from the disk cache, before
        any IR is built; None without cache=True or on a miss (`_machine_code` then
        compiles and stores it without looking again); _NO_SPMD where an earlier process
        found the function has no SPMD form."""
        if not self.cache:
            return None
        from . import caching
        from .ir import F32, F64, I1, I64
        sig = _signature(types)
        t0 = time.perf_counter()
        got = caching.fetch(self, sig, variant)
        if got is None:
            self._hits[(sig, variant)] = None
            return None
        meta, addresses, owner = got
        if meta.get("no_spmd"):
            return _NO_SPMD
        scalars = {str(t): t for t in (F64, F32, I64, I1)}
        kernel = _kernel(*[addresses[e] for e in meta["exports"]], owner)
        if os.environ.get("LLDIFF_TIMING", "") not in ("", "0"):
            print(f"lldiff: {self.__name__} map kernel {variant[0]} {sig}: "
                  f"{(time.perf_counter() - t0) * 1e3:.1f} ms (disk cache)", file=sys.stderr)
        return (kernel, [scalars[t] for t in meta["results"]],
                [tuple(e) for e in meta["errors"]])

    def _map_spec(self, types, mask=None, seeded=None, width=None):
        """The verified specialization a map kernel runs (see `_map_kernel`); TypeError when
        it takes or returns arrays."""
        from .ir import verify
        if mask is None:
            spec = self._ir(types)
        elif width is not None:
            spec = self._derived_ir(types, "jvp", mask, width)
        else:
            spec = self._derived_ir(types, "grad", mask, seeded=seeded)
        if any(t.is_memref for t in list(spec.func.arg_types) + spec.func.result_types):
            raise TypeError(f"lldiff.vectorize: {self.__name__} takes or returns an array; "
                            "only functions of numbers returning numbers are mapped (on the "
                            "CPU or as GPU kernels)")
        verify(spec.module)
        return spec

    def _gpu_kernel(self, types, mask=None, seeded=None, width=None, arch="sm_90",
                    emulate=False):
        """(code, kernel name, result types, error table) of the GPU map kernel of the
        specialization `_map_kernel` would map (codegen/nvptx.py): `code` is PTX for `arch`,
        made once per arch, or with `emulate` the kernel's host LLVM IR for running its
        threads on the CPU (tests)."""
        return self._once(("gpu", types, mask, seeded, width, None if emulate else arch),
                          lambda: self._make_gpu_kernel(types, mask, seeded, width, arch,
                                                        emulate))

    def _make_gpu_kernel(self, types, mask, seeded, width, arch, emulate):
        from .codegen.nvptx import emit_kernel_module, kernel_name
        spec = self._map_spec(types, mask, seeded, width)
        text, errors = emit_kernel_module(spec.module, spec.symbol,
                                          name=spec.symbol + ".kernel",
                                          fastmath=self.fastmath, emulate=emulate)
        if not emulate:
            from .runtime import cuda
            text = cuda.ptx(text, arch)
        return text, kernel_name(spec.symbol), spec.func.result_types, errors

    # --- derivatives --------------------------------------------------------------------

    def _derived_ir(self, types, kind, mask, width=1, seeded=None, tmask=None,
                    checkpoints=None):
        """The specialization of a derivative of this function, differentiating the arguments
        whose `mask` flag is set: kind "jvp" (carrying `width` tangent directions), "vjp"
        (seeds as arguments; with `seeded`, results not flagged get no adjoint code) or "grad"
        (the vjp with the float results whose `seeded` flag is set seeded with 1.0) or "hvp"
        (the jvp, `width` directions, of that "grad": forward over reverse, for Hessians; its
        tangents go to the arguments flagged in `tmask`, default `mask`). `checkpoints`
        (kinds "vjp" and "grad"): snapshots per checkpointed loop (passes/checkpoint.py)."""
        types, mask = tuple(types), tuple(bool(m) for m in mask)
        seeded = None if seeded is None else tuple(bool(s) for s in seeded)
        tmask = None if tmask is None else tuple(bool(m) for m in tmask)
        key = (types,) + _derived_variant(kind, mask, width, seeded, tmask, checkpoints)
        d = self._derivs.get(key)
        if d is not None:
            return d
        with _lock:
            d = self._derivs.get(key)
            if d is not None:
                return d
            from .ir import Module, print_func, verify
            from .passes import grad_func, jvp_func, run_pipeline, taylor_func, vjp_func
            primal = self._ir(types)
            t0 = time.perf_counter()
            module = Module(list(primal.module))
            target = primal.symbol if self._custom is None else \
                self._rule_wrapper(module, primal)
            if kind == "jvp":
                name = jvp_func(module, target, mask, width)
            elif kind == "jet":  # Taylor mode, `width` = the order
                name = taylor_func(module, target, mask, width)
            elif kind == "vjp" and width == 1:  # seeded: the results that get adjoint code
                name = vjp_func(module, target, mask, seeded, checkpoints)
            elif kind == "grad" and width == 1:
                name = grad_func(module, target, mask, seeded, checkpoints)
            elif kind == "hvp":  # forward over reverse: the jvp of the gradient
                g = grad_func(module, target, mask, seeded)
                # the gradient's shadow arguments (float arrays' gradients, accumulated in
                # place) are differentiated too: their tangent arrays receive H·v
                gmask = (tmask or mask) + (True,) * (len(module[g].args) - len(mask))
                name = jvp_func(module, g, gmask, width)
            elif kind == "hvp-rof" and width == 1:  # reverse over forward: grad of the jvp
                j = jvp_func(module, target, mask, 1)
                jf = module[j]
                n = len(primal.func.result_types)
                jmask = mask + (False,) * (len(jf.args) - len(mask))
                name = grad_func(module, j, jmask, (False,) * n + (True,) * (
                    len(jf.result_types) - n))
            else:
                raise ValueError(f"unknown derivative kind {kind!r}")
            d = _Specialization(types, name)
            d.kind = kind
            d.variant = key[1:]
            d.timings["pass:" + (kind if kind in ("jvp", "jet") else "vjp")] = \
                time.perf_counter() - t0
            if self.verify:
                verify(module)
            run_pipeline(module, "canonicalize", verify=self.verify, timings=d.timings)
            if kind not in ("jvp", "jet"):
                d.before_tape = [print_func(f) for f in module if f.name not in
                                 primal.module.funcs]
                run_pipeline(module, "tape", verify=self.verify, timings=d.timings)
            _mark_writes(module, module[name])
            if kind == "grad" and sum(m and t.is_float for m, t in zip(mask, types)) > 1:
                # the entry point returns (value, [aux...,] (g1, g2, ...))
                module[name].attrs["py_group"] = len(primal.func.result_types)
            if kind == "grad":
                _mark_alloc(module[name], types, mask, len(primal.func.result_types))
            d.func = module[name]
            d.module = module
            d.compile_time = time.perf_counter() - t0
            self._derivs[key] = d
            return d

    def _rule_ir(self, spec):
        """(kind, specialization of the user rule) for the primal specialization `spec`:
        a custom_jvp rule takes (x..., one tangent per float x) and returns (y, dy); a
        custom_vjp rule takes (x..., y, ybar) and returns one cotangent per float x."""
        from .ir import F64
        kind, rule = self._custom
        types = spec.types
        rt = spec.func.result_types
        if len(rt) != 1 or not rt[0].is_float:
            raise CompileError(f"{self.__name__} has a custom_{kind} rule, so it must return "
                               f"one float; it returns {', '.join(map(str, rt)) or 'nothing'}")
        if any(t.is_memref for t in types):
            raise CompileError(f"{self.__name__}: custom rules take numbers only (no arrays) "
                               "for now")
        floats = [t for t in types if t.is_float]
        rtypes = self._rule_types(spec)
        with _lock:
            self._in_rule += 1
            try:
                r = rule._ir(tuple(rtypes))
            finally:
                self._in_rule -= 1
        want = [F64, F64] if kind == "jvp" else [F64] * len(floats)
        got = list(r.func.result_types)
        if got != want:
            what = "(y, dy)" if kind == "jvp" else f"{len(floats)} cotangent(s), one per float " \
                "argument"
            raise CompileError(f"the custom_{kind} rule of {self.__name__} must return {what} "
                               f"as floats; it returns {', '.join(map(str, got)) or 'nothing'}")
        return kind, r

    def _rule_types(self, spec):
        """The argument types of the rule for primal specialization `spec`."""
        from .ir import F64
        kind = self._custom[0]
        n = sum(t.is_float for t in spec.types)
        return tuple(spec.types) + ((F64,) * n if kind == "jvp" else (F64, F64))

    def _rule_wrapper(self, module, primal):
        """Add `<symbol>.ruled`, a function that calls the primal through its user rule, to
        `module` (with the rule): what the AD passes differentiate for a custom function."""
        from .ir import Builder, Func
        kind, r = self._rule_ir(primal)
        for f in [r.func, *r.callees]:
            if f.name not in module.funcs:
                module.add(f)
        f = primal.func
        w = Func(primal.symbol + ".ruled", f.arg_types, f.result_types, f.arg_names, loc=f.loc)
        b = Builder(w.body.block, f.loc)
        call = b.create("func.call", list(w.args), {"callee": f.name,
                                                    f"custom_{kind}": r.func.name},
                        result_types=f.result_types)
        b.create("func.return", list(call.results), result_types=[])
        module.add(w)
        return w.name

    def _derived(self, types, kind, mask, width=1, seeded=None, fallback=None, tmask=None,
                 checkpoints=None):
        """Like `_derived_ir`, compiled: `.entry` takes the primal arguments then the tangents
        (or seeds). Calls with other argument types go to `fallback`."""
        d = self._derived_ir(types, kind, mask, width, seeded, tmask, checkpoints)
        if d.entry is None:
            with _lock:
                if d.entry is None:
                    self._compile(d, fallback or _no_fallback(self.__name__, kind))
        return d

    # --- ahead of the first call ---------------------------------------------------------

    def compile(self, signatures, progress=False):
        """Compile one specialization per signature now, instead of at the first call with
        those types: each signature is a tuple of example arguments, or of the types float,
        int and bool (arrays: an example array). With cache=True, entries already on disk
        are loaded instead. `progress=True` draws a progress bar on stderr while compiling
        (nothing is printed by default). Returns self.

            f.compile([(float, float), (float, int)], progress=True)
        """
        sigs = [tuple(s) if isinstance(s, (tuple, list)) else (s,) for s in signatures]
        from .progress import Bar
        bar = Bar(f"compile {self.__name__}", len(sigs)) if progress else None
        try:
            for sig in sigs:
                example = [{float: 1.0, int: 1, bool: True}.get(v, v) if isinstance(v, type)
                           else v for v in sig]
                self._ready(self._bind(example, {}))
                if bar is not None:
                    bar.add(1)
        finally:
            if bar is not None:
                bar.close()
        return self

    def _ready(self, values):
        """Compile (or load) what a call with these bound arguments runs."""
        if self.cache and self._cached(values, ("primal",)) is not None:
            return
        self._native(tuple(self._arg_type(name, v) for name, v in values))

    # --- inspection ---------------------------------------------------------------------

    def inspect(self, stage="ir", *args, arch="sm_90"):
        """Text of a compilation stage: "ir", "jvp", "vjp", "llvm", "llvm-opt", "asm" or
        "ptx" (the GPU map kernel of the function for `arch`, codegen/nvptx.py; needs
        libdevice, see lldiff.runtime.cuda).

        "jvp" is the forward-mode IR differentiating every float argument (after
        canonicalize): the jvp functions and the helpers they call. "vjp" is the reverse-mode
        IR for the float arguments and float arrays, before tape materialization (abstract
        ad.push/ad.pop) and after it (passes/tape.py).

        "spmd" is the W-lane form (passes/spmd.py) that lldiff.vectorize runs in SIMD lanes,
        of the function and of its gradient w.r.t. its float arguments: example arguments
        given as numpy arrays vary between lanes, numbers are uniform.

        With example `args`, the specialization for their types; otherwise the first one
        compiled.
        """
        if stage not in _STAGES:
            raise ValueError(f"stage must be one of {', '.join(_STAGES)}, got {stage!r}")
        if stage == "spmd":
            return self._inspect_spmd(args)
        if args:
            values = self._bind(args, {})
            types = tuple(self._arg_type(name, v) for name, v in values)
        elif self._specs:
            types = next(iter(self._specs))
        else:
            raise ValueError(f"{self.__name__} has not been compiled yet: pass example "
                             "arguments, e.g. f.inspect('ir', 1.0)")
        return self.inspect_types(stage, types, arch)

    def _inspect_spmd(self, args):
        from .batch import arg_type, host_array
        if not args:
            raise ValueError(f"{self.__name__}.inspect('spmd', ...) needs example arguments "
                             "(arrays vary between lanes, numbers are uniform)")
        values = self._bind(args, {})
        arrays = [host_array(self.__name__, name, v) for name, v in values]
        return self._spmd_text(tuple(arg_type(a) for a in arrays),
                               tuple(a.ndim == 0 for a in arrays))

    def _spmd_text(self, types, uniform):
        from .ir import print_func
        from .passes.spmd import NotSpmd, spmd_func
        from .runtime import get_engine
        lanes = get_engine().simd_lanes()
        out = []
        mask = tuple(t.is_float for t in types)
        for what, spec in (("the function", lambda: self._map_spec(types)),
                           ("its gradient", lambda: self._map_spec(types, mask, (True,) + (
                               False,) * (len(self._ir(types).func.result_types) - 1)))):
            if what == "its gradient" and not any(mask):
                continue
            s = spec()
            try:
                text = print_func(spmd_func(s.module, s.symbol, uniform, lanes))
            except NotSpmd as e:
                text = f"// no SPMD form: {e} (lldiff.vectorize runs the scalar loop)\n"
            out.append(f"// {what}, {lanes} lanes\n{text}")
        return "\n".join(out)

    def inspect_types(self, stage, types, arch="sm_90"):
        from .ir import print_func, print_module
        types = tuple(types)
        if stage == "ptx":
            return self._ptx(types, arch)
        if stage == "spmd":  # every argument varying between lanes
            return self._spmd_text(types, (False,) * len(types))
        if stage == "ir":
            return print_module(self._ir(types).module)
        if stage == "jvp":
            d = self._derived_ir(types, "jvp", [t.is_float for t in types])
            primal = self._ir(types).module.funcs
            return "\n".join(print_func(f) for f in d.module if f.name not in primal)
        if stage == "vjp":
            d = self._derived_ir(types, "vjp", [t.is_float or t.is_memref and t.elem.is_float
                                                for t in types])
            primal = self._ir(types).module.funcs
            return ("// reverse mode before tape materialization\n" + "\n".join(d.before_tape) +
                    "\n// after tape materialization (passes/tape.py)\n" +
                    "\n".join(print_func(f) for f in d.module if f.name not in primal))
        from . import codegen
        from .runtime import get_engine
        spec = self._ir(types)
        text = spec.llvm_text or codegen.emit(spec.module, [spec.symbol], name=spec.symbol,
                                              fastmath=self.fastmath)
        if stage == "llvm":
            return text
        eng = get_engine()
        if stage == "llvm-opt":
            return str(eng.optimize(eng.parse(text), self.opt))
        return eng.assembly(text, self.opt)

    def _ptx(self, types, arch):
        """PTX of the map kernel of the specialization for `types` for `arch`."""
        return self._gpu_kernel(types, arch=arch)[0]

    @property
    def signatures(self):
        return list(self._specs)


def jit_grad(fn=None, *, opt=None, verify=None, cache=False, fastmath=False):
    """Compile `fn` and its reverse-mode gradient: calling it returns `(value, gradient)`.

    The gradient is taken with respect to every float argument and float array (a float or an
    array for one, a tuple in argument order for several; int and bool arguments and int
    arrays are not differentiated), and value and gradient come from one native call (for
    arrays, after zeroed gradient arrays are made). `fn` must return one float. Options as
    `jit`.
    """
    def wrap(f):
        d = jit(f, opt=opt, verify=verify)
        cls = type(f"jit_grad<{d.__name__}>", (JitGrad,), {})
        g = cls(d.py_func, d.opt, d.verify)
        g.boundscheck = d.boundscheck
        g.cache = bool(cache)
        g.fastmath = bool(fastmath)
        return g

    return wrap if fn is None else wrap(fn)


class JitGrad(Dispatcher):
    """A `@jit_grad` function: calls return (value, gradient) from one native call."""

    def __repr__(self):
        return f"<lldiff.jit_grad {self.py_func.__qualname__}>"

    def _dispatch(self, *args, **kwargs):
        key = None if kwargs else _plan_key(args)
        if key is not None:  # a call like an earlier one (arrays: the first-call checks done)
            plan = self._plans.get(("jit_grad",) + key)
            if plan is not None and _arrays_ok(args, plan[1], plan[2]):
                return plan[0](args)
        values = self._bind(args, kwargs)
        hit = None
        if self.cache:  # a disk-cache entry, before any IR is built
            mask = _grad_mask(values)
            if any(mask):
                hit = self._cached(values, ("grad", mask, 1, (True,)))
        if hit is not None:
            entry, writes = hit
            scalars = [i for i, (_, v) in enumerate(values) if type(v) is float]
            arrays = [i for i, m in enumerate(mask) if m and i not in scalars]
        else:
            types = tuple(self._arg_type(name, v) for name, v in values)
            spec = self._grad_spec(types, values)
            entry, writes = spec.entry, spec.func.attrs.get("writes", ())
            values = [(name, _canonical(v)) for name, v in values]
            scalars = [i for i, t in enumerate(types) if t.is_float]
            arrays = [i for i, t in enumerate(types) if t.is_memref and t.elem.is_float]
        _check_arrays(self.__name__, values, writes)
        if not arrays:
            return entry(*[v for _, v in values])
        if key is not None and len(args) == len(values):
            # float arrays: called with the primal arguments alone, the entry point makes the
            # zeroed arrays their gradients accumulate into (codegen/abi.py `py_alloc`)
            checked = [i for i, (_, v) in enumerate(values) if type(v) is _numpy().ndarray]
            self._plans[("jit_grad",) + key] = (lambda a: entry(*a), checked, writes)
        # here the arrays are passed, so that a call the entry point refuses cannot come
        # back to this method
        np = _numpy()
        args = [v for _, v in values]
        shadows = {i: np.zeros(args[i].shape, args[i].dtype) for i in arrays}
        out = entry(*args, *shadows.values())
        out = out if isinstance(out, tuple) else (out,)
        rest = out[1] if len(scalars) > 1 else out[1:]
        grads = dict(zip(scalars, rest))
        grads.update(shadows)
        order = sorted(grads)
        return out[0], (grads[order[0]] if len(order) == 1 else
                        tuple(grads[i] for i in order))

    def _ready(self, values):
        mask = _grad_mask(values)
        if self.cache and any(mask) and \
                self._cached(values, ("grad", mask, 1, (True,))) is not None:
            return
        self._grad_spec(tuple(self._arg_type(name, v) for name, v in values), values)

    def _grad_spec(self, types, values):
        mask = [t.is_float or t.is_memref and t.elem.is_float for t in types]
        if not any(mask):
            raise TypeError(f"{self.__name__}(): @jit_grad differentiates the float "
                            "arguments and arrays, and this call has none "
                            f"({', '.join(name for name, _ in values) or 'no arguments'})")
        rtypes = self._ir(types).func.result_types
        if len(rtypes) != 1 or not rtypes[0].is_float:
            got = " and ".join(str(t) for t in rtypes) or "nothing"
            raise TypeError(f"{self.__name__}(): @jit_grad needs a function returning one "
                            f"float; it returns {got}")
        d = self._derived(types, "grad", mask, seeded=(True,), fallback=self._dispatch)
        cls = type(self)
        if "__call__" not in cls.__dict__ and cls is not JitGrad:
            cls.__call__ = d.entry  # the fast path: a builtin, not a Python method (with
            # float arrays, it makes their gradient arrays itself)
        return d


def _mark_alloc(func, types, mask, n_results):
    """Let the entry point of gradient `func` make its zeroed gradient arrays itself when
    called with the primal arguments only (codegen/abi.py `py_alloc`): it then returns
    (results..., gradient) with the gradient of each differentiated argument in argument
    order -- the value `@jit_grad` returns, from one native call."""
    shadows, order, scalar = [], [], n_results
    for i, (m, t) in enumerate(zip(mask, types)):
        if m and t.is_float:
            order.append(scalar)
            scalar += 1
        elif m and t.is_memref and t.elem.is_float:
            shadows.append(i)
            order.append(-len(shadows))
    if shadows:
        func.attrs["py_alloc"] = (n_results, tuple(shadows), tuple(order))


def _map_proto():
    """The ctypes type of a map kernel (codegen/kernel.py's ABI)."""
    import ctypes
    P, I = ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_int64)
    return ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_int64, ctypes.c_int64, P, I, P, I, I)


_NO_SPMD = object()  # `_cached_kernel`: the function has no SPMD form


def _map_variant(mask, seeded, width):
    """The transformation (`_Specialization.variant`) of the specialization `_map_spec`
    makes for these flags, without making it."""
    if mask is None:
        return ("primal",)
    if width is not None:
        return _derived_variant("jvp", mask, width)
    return _derived_variant("grad", mask, 1, seeded)


def _derived_variant(kind, mask, width=1, seeded=None, tmask=None, checkpoints=None):
    """The variant of `_derived_ir`'s specialization (its key less the types)."""
    mask = tuple(bool(m) for m in mask)
    seeded = None if seeded is None else tuple(bool(s) for s in seeded)
    tmask = None if tmask is None else tuple(bool(m) for m in tmask)
    return (kind, mask, width, seeded) + ((tmask,) if tmask is not None else ()) + \
        ((("checkpoints", checkpoints),) if checkpoints is not None else ())


def _kernel(address, worker, run, serve, owner):
    """The ctypes map kernel at `address`, kept alive by `owner` (the code's library), with
    its worker as `._lldiff_worker` and `._lldiff_pool`: the worker's address and the native
    pool's functions (codegen/kernel.py; batch.py calls them)."""
    import ctypes
    kernel = _map_proto()(address)
    kernel._lldiff_worker = _worker_proto()(worker)
    kernel._lldiff_pool = (worker, ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p,
                                                    ctypes.c_int64)(run), serve)
    kernel._lldiff_library = owner
    return kernel


def _worker_proto():
    """The ctypes type of a map kernel's worker (codegen/kernel.py)."""
    import ctypes
    P, I = ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_int64)
    return ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_int64, ctypes.c_int64, I, P, I, P, I, I)


def _plan_key(args):
    """The key of a call plan: per argument, the exact type of a number, or (dtype, rank,
    layout) of a plain numpy array -- what selects the specialization; None for anything
    else (such calls take the slow path)."""
    np = _numpy()
    key = []
    for a in args:
        t = type(a)
        if t is float or t is int or t is bool:
            key.append(t)
        elif np is not None and t is np.ndarray:
            key.append((a.dtype, a.ndim, a.flags.c_contiguous))  # (dtypes of other byte
            # orders compare unequal)
        else:
            return None
    return tuple(key)


def _arrays_ok(args, indices, writes):
    """The entry point's own array checks (alignment, writeable if written), done first so
    that a failing call goes to the slow path, which raises the clear error."""
    for k in indices:
        fl = args[k].flags
        if not fl.aligned or k in writes and not fl.writeable:
            return False
    return True


def _grad_mask(values):
    """Which bound arguments @jit_grad differentiates, from the values: floats and float
    arrays (as the disk cache keys the gradient before any IR is built)."""
    np = _numpy()
    return tuple(type(v) is float or np is not None and type(v) is np.ndarray and
                 v.dtype.kind == "f" for _, v in values)


def _report_timing(name, spec):
    """LLDIFF_TIMING=1: one line per compiled specialization, milliseconds per stage."""
    t = spec.timings
    passes = {k[5:]: v for k, v in t.items() if k.startswith("pass:")}
    order = ["frontend"] + [f"pass:{k}" for k in passes] + [
        "codegen", "llvm-init", "disk-cache", "llvm-parse", "llvm-opt", "jit", "object",
        "load+store"]
    parts = [f"{k.replace('pass:', '')} {t[k] * 1e3:.1f}" for k in order if k in t]
    sig = ", ".join(str(x) for x in spec.types)
    sys.stderr.write(f"lldiff: {name}({sig}) {spec.kind}: {sum(t.values()) * 1e3:.1f} ms "
                     f"({'; '.join(parts)})\n")


def _signature(types):
    """The mangled signature of argument `types` ("f64_i64"), as symbol names and the disk
    cache's keys spell it."""
    return "_".join(_mangle(t) for t in types) or "void"


def _mangle(t):
    """A type's part of a symbol name: f64, i64, ...; arr2f64 for memref<?x?xf64> and
    arr2f64s for a strided one."""
    if t.is_memref:
        return f"arr{t.rank}{t.elem}" + ("" if t.contiguous else "s")
    return str(t)


def _mark_writes(module, func):
    """Record on `func` which array arguments it may write (the entry point checks them)."""
    if any(t.is_memref for t in func.arg_types):
        from .passes import written_arguments
        func.attrs["writes"] = tuple(sorted(written_arguments(module, func)))


def _check_arrays(fname, values, writes):
    """The slow path's array checks the entry point makes too: a clear error instead.
    `writes`: the indices of the arguments the function writes."""
    np = _numpy()
    for i, (name, v) in enumerate(values):
        if np is not None and type(v) is np.ndarray:
            if not v.flags.aligned:
                raise ValueError(f"{fname}(): argument '{name}' is not aligned; pass a copy "
                                 "(x.copy())")
            if i in writes and not v.flags.writeable:
                raise ValueError(f"{fname}(): argument '{name}' is read-only, and "
                                 f"{fname} writes to it")


def _bad_argument(fname, name, v):
    """The TypeError/ValueError for an argument lldiff cannot take, naming the parameter."""
    np = _numpy()
    where = f"{fname}(): argument '{name}'"
    if np is not None and isinstance(v, np.ndarray):
        if type(v) is not np.ndarray:
            return TypeError(f"{where} is a {type(v).__name__} (an ndarray subclass); pass "
                             "a plain numpy array (np.asarray(x))")
        if v.ndim not in (1, 2):
            return ValueError(f"{where} has {v.ndim} dimensions; arrays of 1 or 2 dimensions "
                              "are supported")
        if not v.dtype.isnative:
            return TypeError(f"{where} has non-native byte order ({v.dtype}); convert it "
                             "with x.astype(x.dtype.newbyteorder('='))")
        return TypeError(f"{where} has dtype {v.dtype}; arrays of float64, float32 or int64 "
                         "are supported")
    if isinstance(v, (list, tuple)):
        return TypeError(f"{where} is a {type(v).__name__}; pass a numpy array "
                         "(np.asarray(...)) or a number")
    return TypeError(f"{where} must be a float, an int, a bool or a numpy array, "
                     f"not {type(v).__name__}")


def _no_fallback(name, kind):
    def fallback(*args, **kwargs):
        raise TypeError(f"{name} ({kind}): internal call with unexpected arguments {args!r}")
    return fallback


def _resolve_callee(obj, arg_types):
    if isinstance(obj, JitGrad):
        raise CompileError(f"'{obj.__name__}' is a @lldiff.jit_grad function: it returns "
                           "(value, gradient), which compiled code cannot call",
                           hint="call the plain @lldiff.jit version of it instead")
    if isinstance(obj, Dispatcher):
        spec = obj._ir(tuple(arg_types))
        if obj._custom is not None and not obj._in_rule:
            # the call carries the user rule (passes/derivatives.py)
            kind, rule = obj._rule_ir(spec)
            return spec.func, list(spec.callees) + [rule.func] + list(rule.callees), \
                {f"custom_{kind}": rule.func.name}
        if obj._custom is not None:
            # a call from inside the function's own rule (whose IR is being built): it carries
            # the rule too, by name, so derivatives of the rule apply it again
            kind, rule = obj._custom
            building = rule._in_progress.get(obj._rule_types(spec))
            if building is not None:
                return spec.func, list(spec.callees), {f"custom_{kind}": building.symbol}
        return spec.func, list(spec.callees)
    return None


def _canonical(v):
    if type(v) in (float, int, bool):
        return v
    return v.item() if hasattr(v, "item") and getattr(v, "ndim", 0) == 0 else v


def _pythonize(values, types):
    out = []
    for v, t in zip(values, types):
        out.append(v if t.is_memref else bool(v) if t.width == 1 else int(v) if t.is_int
                   else float(v))
    if not out:
        return None
    return out[0] if len(out) == 1 else tuple(out)


def _numpy():
    return sys.modules.get("numpy")
