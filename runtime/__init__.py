"""Execution (installed as `lldiff.runtime`): LLVM engine and CPython entry points.

Importing this package is cheap; llvmlite.binding loads when the engine is first used.
Never imports lldiff's IR or passes.
"""

__all__ = ["get_engine", "make_builtin", "process_symbol", "process_imports"]


def get_engine():
    from .engine import engine as _engine
    return _engine()


def make_builtin(address, name, fallback, owner):
    from .entry import make_builtin as _make
    return _make(address, name, fallback, owner)


def process_symbol(name):
    """The address compiled code binds external symbol `name` to, for the objects of this
    process it refers to by name (lldiff.codegen.abi: the ndarray type, the array boxer of
    arrays.py); None for other names (libraries' symbols, found by the loader)."""
    if name == "lldiff.ndarray_type":
        import numpy
        return id(numpy.ndarray)
    if name == "lldiff.array_boxer":
        from .arrays import wrap_array
        return id(wrap_array)
    return None


def process_imports(text):
    """{name: address} of the process symbols LLVM IR `text` references."""
    return {name: process_symbol(name) for name in ("lldiff.ndarray_type", "lldiff.array_boxer")
            if f'@"{name}"' in text}
