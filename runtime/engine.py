"""The LLVM engine: host target machine, the new-PM pipeline, and one shared ORC LLJIT.

Owns llvmlite.binding (imported on first use, never at `import lldiff`). Takes LLVM IR text,
optimizes it at a chosen level with a fresh module pass manager per module (reusing one
aborts LLVM), and links it into the process JIT; a `Library` keeps the JIT'd code alive.
Must not know about lldiff's IR or passes.
"""

import os
import threading
import time

__all__ = ["Engine", "engine", "Library"]

_lock = threading.Lock()
_engine = None


def engine():
    global _engine
    with _lock:
        if _engine is None:
            _engine = Engine()
        return _engine


class Library:
    """JIT'd code for one module; addresses stay valid while this object lives."""

    __slots__ = ("tracker", "addresses", "name")

    def __init__(self, tracker, addresses, name):
        self.tracker = tracker
        self.addresses = addresses
        self.name = name


class Engine:
    def __init__(self):
        import llvmlite.binding as llvm
        self.llvm = llvm
        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        self.triple = llvm.get_process_triple()
        self.cpu = llvm.get_host_cpu_name()
        self.features = llvm.get_host_cpu_features().flatten()
        target = llvm.Target.from_triple(self.triple)
        self.tm = target.create_target_machine(cpu=self.cpu, features=self.features, opt=3,
                                               jit=True)
        self.lljit = llvm.create_lljit_compiler(self.tm)
        self.counter = 0
        self.tm_pic = None  # for object files (emit_object), made on first use
        self._mvec = False  # vector_math(), looked up on first use

    def simd_lanes(self):
        """The width W of the SPMD form lldiff.vectorize runs: two vector registers of f64
        (16 lanes with AVX-512, 8 with AVX2, else 4), or $LLDIFF_SIMD_LANES. Two registers
        per value, as ISPC's x16 targets for doubles: each op is two independent
        instructions, which hides the latency of a loop-carried chain (a series' running
        term); measured on AVX-512, 16 lanes ran the Bessel series 10-30% faster than 8
        (benchmarks/spmd.py)."""
        forced = os.environ.get("LLDIFF_SIMD_LANES")
        return int(forced) if forced else 2 * self.register_lanes()

    def register_lanes(self):
        """f64 lanes in one vector register of this CPU: 8 with AVX-512, 4 with AVX2, else
        2 (SSE2 / NEON)."""
        feats = set(f[1:] for f in self.features.split(",") if f.startswith("+"))
        return 8 if "avx512f" in feats else 4 if "avx2" in feats else 2

    def glibc_pow(self):
        """Whether libm's pow is glibc's of 2.28 or later (ARM's optimized-routines code,
        whose error analysis codegen/vmath.py's vector pow relies on to equal it bit for
        bit); elsewhere (musl, macOS, Windows, older glibc) the SPMD form calls libm's pow
        lane by lane."""
        try:
            name, version = os.confstr("CS_GNU_LIBC_VERSION").split()
            return name == "glibc" and tuple(map(int, version.split(".")[:2])) >= (2, 28)
        except (AttributeError, ValueError, OSError):
            return False

    def vector_math(self, functions):
        """(lanes, ISA letter, names) of glibc's vector math library (libmvec) for this
        CPU: `_ZGV<letter>N<lanes>v_<name>` (`vv` for two arguments) are the ones it has of
        `functions` ({libm name: argument count}, the same on every call); None without
        libmvec. Loads it into the process (RTLD_GLOBAL) so compiled code and the object
        loader resolve its symbols."""
        if self._mvec is False:
            import ctypes
            import ctypes.util
            got = None
            path = ctypes.util.find_library("mvec")
            if path is not None:
                try:
                    lib = ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
                except OSError:
                    lib = None
                lanes = self.register_lanes()
                letter = {8: "e", 4: "d", 2: "b"}[lanes]
                if lib is not None:
                    names = frozenset(n for n, arity in functions.items() if hasattr(
                        lib, f"_ZGV{letter}N{lanes}{'v' * arity}_{n}"))
                    got = (lanes, letter, names) if names else None
            self._mvec = got
        return self._mvec

    def parse(self, text):
        mod = self.llvm.parse_assembly(text)
        mod.triple = self.triple
        mod.data_layout = str(self.tm.target_data)
        mod.verify()
        return mod

    def optimize(self, mod, level):
        llvm = self.llvm
        pto = llvm.create_pipeline_tuning_options(speed_level=level)
        if level >= 2:
            pto.loop_vectorization = True
            pto.slp_vectorization = True
        pb = llvm.create_pass_builder(self.tm, pto)
        pb.getModulePassManager().run(mod, pb)  # a fresh MPM per module: reuse aborts
        return mod

    def compile(self, text, level, exports, timings=None, imports=None):
        """Optimize and JIT `text`; return a Library with the addresses of `exports`.
        `imports` binds external symbols to addresses; `timings` (a dict) gets the seconds of
        llvm-parse, llvm-opt and jit."""
        mod = self._optimized(text, level, timings)
        t0 = time.perf_counter()
        lib = self._link(lambda b: b.add_ir(str(mod)), exports, imports)
        if timings is not None:
            timings["jit"] = time.perf_counter() - t0
        return lib

    def emit_object(self, text, level, timings=None):
        """Optimize `text` and return it as an ELF/Mach-O/COFF object file (bytes) of
        position-independent code with the small code model: what the disk cache stores and
        runtime/objload.py loads. `timings` as `compile` ("object" for the code generation)."""
        mod = self._optimized(text, level, timings)
        t0 = time.perf_counter()
        with _lock:
            if self.tm_pic is None:
                target = self.llvm.Target.from_triple(self.triple)
                self.tm_pic = target.create_target_machine(
                    cpu=self.cpu, features=self.features, opt=3, reloc="pic", codemodel="small")
            obj = self.tm_pic.emit_object(mod)
        if timings is not None:
            timings["object"] = time.perf_counter() - t0
        return obj

    def _optimized(self, text, level, timings):
        t0 = time.perf_counter()
        mod = self.parse(text)
        t1 = time.perf_counter()
        mod = self.optimize(mod, level)
        if timings is not None:
            timings["llvm-parse"] = t1 - t0
            timings["llvm-opt"] = time.perf_counter() - t1
        return mod

    def load_object(self, data, exports, imports=None):
        """Link object file bytes (from `emit_object`) into the JIT: the loader for objects
        runtime/objload.py does not handle."""
        return self._link(lambda b: b.add_object_img(data), exports, imports)

    def _link(self, add, exports, imports):
        with _lock:
            self.counter += 1
            name = f"lldiff_lib{self.counter}"
        builder = add(self.llvm.JITLibraryBuilder()).add_current_process()
        for sym, address in (imports or {}).items():
            builder.import_symbol(sym, address)
        for sym in exports:
            builder.export_symbol(sym)
        tracker = builder.link(self.lljit, name)
        return Library(tracker, {sym: tracker[sym] for sym in exports}, name)

    def assembly(self, text, level):
        return self.tm.emit_assembly(self.optimize(self.parse(text), level))
