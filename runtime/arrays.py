"""Arrays that compiled code returns: numpy arrays that own the native memory.

A compiled function allocates a returned array as one malloc'd block (a 16-byte header, then
the elements, C order). The entry point calls `wrap_array(block, type_num, *shape)`, which
gives the block to a small owner object exposing `__array_interface__`; the numpy array's base
is that owner, and the block is freed when the last view of it goes away.
"""

import ctypes
import ctypes.util

__all__ = ["wrap_array"]

_libc = ctypes.CDLL(ctypes.util.find_library("c"))
_free = _libc.free
_free.argtypes = [ctypes.c_void_p]
_free.restype = None

_TYPESTR = {12: "<f8", 11: "<f4", 7: "<i8", 9: "<i8"}
_HEADER = 16


class _Owner:
    __slots__ = ("__array_interface__", "_block")

    def __init__(self, block, typestr, shape):
        self._block = block
        self.__array_interface__ = {"data": (block + _HEADER, False), "shape": shape,
                                    "typestr": typestr, "version": 3}

    def __del__(self):
        _free(self._block)


def wrap_array(block, type_num, *shape):
    import numpy as np
    return np.asarray(_Owner(block, _TYPESTR[type_num], tuple(shape)))
