"""IR -> LLVM IR text (llvmlite.ir) with CPython entry points. Imports only `lldiff.ir`."""

from .abi import emit_entry, entry_name
from .kernel import (emit_map, emit_pool, emit_worker, map_name, run_name, serve_name,
                     worker_name)
from .llvm import LOWER, STRUCTURAL, emit_module
from .spmd import VECTOR_MATH, emit_spmd_map, simd_name

__all__ = ["emit", "emit_map_module", "emit_spmd_map_module", "entry_name", "map_name",
           "worker_name", "run_name", "serve_name",
           "simd_name", "vector_math_functions", "LOWER", "STRUCTURAL"]


def emit(module, entries, name="lldiff", fastmath=False):
    """LLVM IR text for `module`, exporting `entries` (IR func names) with entry points
    (which may reference the process symbols of abi.py: NDARRAY_TYPE, ARRAY_BOXER,
    NUMPY_ZEROS)."""
    lm, errors = emit_module(module, set(entries), name, fastmath)
    for fname in entries:
        emit_entry(lm, module[fname], errors)
    return str(lm)


def emit_map_module(module, symbol, name="lldiff", fastmath=False):
    """LLVM IR text for `module` with an elementwise map kernel of `symbol`, its worker and
    pool functions (kernel.py), and the error table: [(exception name, message)] for status
    codes 1, 2, ..."""
    lm, errors = emit_module(module, {symbol}, name, fastmath)
    _worker_and_pool(lm, emit_map(lm, module[symbol]))
    return str(lm), list(errors.entries)


def emit_spmd_map_module(module, symbol, lanes_symbol, name="lldiff", fastmath=False,
                         vector_math=None, vector_pow=False):
    """LLVM IR text for `module` with the SIMD map kernel (spmd.py: `simd_name(symbol)`) of
    function `symbol`, running its SPMD form `lanes_symbol` (also in `module`), its worker
    and pool functions (kernel.py), and the error table. `vector_math`: libmvec functions the
    SPMD form calls (see spmd.py), or None; `vector_pow`: pow in vector code (vmath.py: only
    where libm is glibc's)."""
    lm, errors = emit_module(module, {symbol}, name, fastmath, vector_math=vector_math,
                             vector_pow=vector_pow)
    _worker_and_pool(lm, emit_spmd_map(lm, module[symbol], module[lanes_symbol]))
    return str(lm), list(errors.entries)


def _worker_and_pool(lm, kernel):
    emit_worker(lm, kernel)
    emit_pool(lm, kernel)


def vector_math_functions():
    """{libm name: argument count} of the functions the SPMD form may call from a vector
    math library (runtime's Engine.vector_math looks them up)."""
    return {name: 2 if op in ("math.powf", "math.atan2", "lldiff.hypot") else 1
            for op, name in VECTOR_MATH.items()}
