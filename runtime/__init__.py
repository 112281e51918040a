"""Execution (installed as `lldiff.runtime`): LLVM engine and CPython entry points.

Importing this package is cheap; llvmlite.binding loads when the engine is first used.
Never imports lldiff's IR or passes.
"""

__all__ = ["get_engine", "make_builtin", "array_boxer"]


def get_engine():
    from .engine import engine as _engine
    return _engine()


def make_builtin(address, name, fallback, owner):
    from .entry import make_builtin as _make
    return _make(address, name, fallback, owner)


def array_boxer():
    """The callable entry points use to return arrays (see arrays.py)."""
    from .arrays import wrap_array
    return wrap_array
