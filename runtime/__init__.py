"""Execution (installed as `lldiff.runtime`): LLVM engine and CPython entry points.

Importing this package is cheap; llvmlite.binding loads when the engine is first used.
Never imports lldiff's IR or passes.
"""

__all__ = ["get_engine", "make_builtin", "process_symbol", "process_imports", "counters",
           "PROCESS_SYMBOLS"]

PROCESS_SYMBOLS = ("lldiff.ndarray_type", "lldiff.array_boxer", "lldiff.numpy_zeros",
                   "lldiff.counters")
# The layout of "lldiff.counters" (lldiff.codegen.abi.COUNTER_SLOTS, repeated here so that
# this package needs nothing of lldiff's compiler).
_COUNTER_SLOTS = ("tape_bytes", "tape_peak", "recomputed_steps", "snapshots")
_counters = None


def get_engine():
    from .engine import engine as _engine
    return _engine()


def make_builtin(address, name, fallback, owner):
    from .entry import make_builtin as _make
    return _make(address, name, fallback, owner)


def process_symbol(name):
    """The address compiled code binds external symbol `name` to, for the objects of this
    process it refers to by name (lldiff.codegen.abi: the ndarray type, the array boxer of
    arrays.py, numpy.zeros); None for other names (libraries' symbols, found by the loader)."""
    if name == "lldiff.ndarray_type":
        import numpy
        return id(numpy.ndarray)
    if name == "lldiff.numpy_zeros":
        import numpy
        return id(numpy.zeros)
    if name == "lldiff.array_boxer":
        from .arrays import wrap_array
        return id(wrap_array)
    if name == "lldiff.counters":
        import ctypes
        return ctypes.addressof(_counter_block())
    return None


def _counter_block():
    global _counters
    if _counters is None:
        import ctypes
        _counters = (ctypes.c_int64 * len(_COUNTER_SLOTS))()
    return _counters


def counters(reset=False):
    """{name: value} of the process-wide counters compiled code keeps: `tape_bytes` (heap
    bytes reverse-mode tapes hold now), `tape_peak` (their most since the last reset),
    `recomputed_steps` (loop iterations checkpointed gradients ran again) and `snapshots`
    (loop states they stored). `reset=True` zeroes them afterwards (the peak restarts from
    what tapes hold now). Updated atomically; a tape's inline buffer on the native stack
    (the first TAPE_INLINE_BYTES of every tape) is not counted."""
    block = _counter_block()
    out = dict(zip(_COUNTER_SLOTS, block))
    if reset:
        for i, name in enumerate(_COUNTER_SLOTS):
            if name != "tape_bytes":
                block[i] = 0
        block[_COUNTER_SLOTS.index("tape_peak")] = block[0]
    return out


def process_imports(text):
    """{name: address} of the process symbols LLVM IR `text` references."""
    return {name: process_symbol(name) for name in PROCESS_SYMBOLS if f'@"{name}"' in text}
