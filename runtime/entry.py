"""Wraps a JIT'd CPython entry point as a builtin function object.

The builtin's `self` is the Python fallback callable the entry point calls for anything its
fast path does not handle; the method definition and the JIT library are kept alive with it.
"""

import ctypes

__all__ = ["make_builtin"]

METH_FASTCALL = 0x80
METH_KEYWORDS = 0x02


class _PyMethodDef(ctypes.Structure):
    _fields_ = [("ml_name", ctypes.c_char_p), ("ml_meth", ctypes.c_void_p),
                ("ml_flags", ctypes.c_int), ("ml_doc", ctypes.c_char_p)]


_new = ctypes.pythonapi.PyCFunction_NewEx
_new.restype = ctypes.py_object
_new.argtypes = [ctypes.c_void_p, ctypes.py_object, ctypes.py_object]

_keep = []  # method definitions must outlive the builtins that point at them


def make_builtin(address, name, fallback, owner):
    """A builtin calling the entry point at `address`; `owner` (the Library) is kept alive."""
    name_b = name.encode()
    md = _PyMethodDef(name_b, address, METH_FASTCALL | METH_KEYWORDS, None)
    _keep.append((md, name_b, owner))
    return _new(ctypes.addressof(md), fallback, None)
