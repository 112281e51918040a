"""Scalar types of the lldiff IR.

Owns the type objects (`f64`, `f32`, `i64`, `i1`) and the int/float unification rule the
frontend uses. Must not know about ops, LLVM or Python values beyond their kind.
"""

__all__ = ["Type", "FloatType", "IntType", "MemRefType", "memref", "VectorType", "vector", "F64",
           "F32", "I64", "I1", "TAPE", "unify"]


class Type:
    __slots__ = ("name", "width")

    def __init__(self, name, width):
        self.name = name
        self.width = width

    is_float = False
    is_int = False
    is_memref = False
    is_vector = False

    def __repr__(self):
        return self.name

    __str__ = __repr__


class FloatType(Type):
    __slots__ = ()
    is_float = True


class IntType(Type):
    __slots__ = ()
    is_int = True


class MemRefType(Type):
    """An array of `rank` (1 or 2) dimensions of `elem` (f64, f32 or i64), MLIR's memref.

    `contiguous`: C-contiguous (MLIR's identity layout, printed `memref<?x?xf64>`); otherwise
    any strides (`memref<?x?xf64, strided<[?, ?], offset: ?>>`). Interned: build with
    `memref(...)`, compare with `is`, like every type here.
    """

    __slots__ = ("elem", "rank", "contiguous")
    is_memref = True

    def __init__(self, elem, rank, contiguous):
        dims = "x".join("?" * rank)
        name = f"memref<{dims}x{elem}>" if contiguous else \
            f"memref<{dims}x{elem}, strided<[{', '.join('?' * rank)}], offset: ?>>"
        super().__init__(name, 64)
        self.elem = elem
        self.rank = rank
        self.contiguous = contiguous


_MEMREFS = {}


def memref(elem, rank, contiguous=True):
    key = (elem, rank, bool(contiguous))
    t = _MEMREFS.get(key)
    if t is None:
        t = _MEMREFS[key] = MemRefType(elem, rank, bool(contiguous))
    return t


class VectorType(Type):
    """`vector<Wxelem>`: one value per SIMD lane, MLIR's vector type. Only the SPMD form
    (passes/spmd.py) has them; `width` stays the element's bit width, `lanes` is W.
    Interned: build with `vector(...)`."""

    __slots__ = ("elem", "lanes")
    is_vector = True

    def __init__(self, elem, lanes):
        super().__init__(f"vector<{lanes}x{elem}>", elem.width)
        self.elem = elem
        self.lanes = lanes


_VECTORS = {}


def vector(elem, lanes):
    key = (elem, lanes)
    t = _VECTORS.get(key)
    if t is None:
        t = _VECTORS[key] = VectorType(elem, lanes)
    return t


F64 = FloatType("f64", 64)
F32 = FloatType("f32", 32)
I64 = IntType("i64", 64)
I1 = IntType("i1", 1)
# The handle of a materialized reverse-mode tape (passes/tape.py); never a user-visible value.
TAPE = Type("!ad.tape", 64)

_RANK = {I1: 0, I64: 1, F32: 2, F64: 3}


def unify(a, b):
    """The type both `a` and `b` convert to when control flow joins them (bool < int < float).

    Python would keep each value's own type; lldiff needs one static type per SSA value, so an
    int that meets a float becomes a float, as in numba.
    """
    if a is b:
        return a
    if a not in _RANK or b not in _RANK:
        raise TypeError(f"{a} and {b} have no common type")
    return a if _RANK[a] >= _RANK[b] else b
