"""The primitive ops of the lldiff IR: one definition per op.

Each `OpDef` carries the op's type rule, its printed syntax and its reference semantics (used
by `interpreter.py`). Derivative rules live in `lldiff.passes.derivatives` and LLVM lowering in
`lldiff.codegen`, each as one table keyed by op name; tests check those tables cover this one.
Semantics here are the oracle: integers are 64-bit two's complement, floats follow IEEE 754 and
the C math library (no Python domain errors).
"""

import ctypes
import ctypes.util
import math

from .types import F32, F64, I1, I64, TAPE

__all__ = ["OpDef", "OPS", "TAPE_OPS", "opdef", "wrap_i64"]

OPS = {}


class OpDef:
    __slots__ = ("name", "syntax", "type_rule", "eval", "pure")

    def __init__(self, name, syntax, type_rule, eval=None, pure=True):
        self.name = name
        self.syntax = syntax  # printer form: binary, unary, cmp, cast, select, const, ...
        self.type_rule = type_rule  # (operand types, attrs) -> result types; raises TypeError
        self.eval = eval  # (attrs, *operand values) -> result value
        self.pure = pure  # no side effects: removable when its results are unused


def opdef(name, syntax, type_rule, eval=None, pure=True):
    OPS[name] = OpDef(name, syntax, type_rule, eval, pure)


def wrap_i64(x):
    return ((int(x) + (1 << 63)) & ((1 << 64) - 1)) - (1 << 63)


# --- type rules --------------------------------------------------------------------------

def _same(kind):
    def rule(types, attrs):
        t = types[0]
        if not all(u is t for u in types) or not getattr(t, kind):
            raise TypeError(f"operands must share one {kind[3:]} type, got {types}")
        return [t]
    return rule


def _fixed(operands, result):
    def rule(types, attrs):
        if list(types) != list(operands):
            raise TypeError(f"expected operands {operands}, got {types}")
        return [result] if result is not None else []
    return rule


def _float_pred(types, attrs):
    _same("is_float")(types, attrs)
    return [I1]


def _int_pred(types, attrs):
    _same("is_int")(types, attrs)
    return [I1]


def _cast(src_kind, dst_kind):
    def rule(types, attrs):
        (t,) = types
        dst = attrs["to"]
        if not getattr(t, src_kind) or not getattr(dst, dst_kind):
            raise TypeError(f"cannot cast {t} to {dst}")
        return [dst]
    return rule


def _fcast(src, dst):
    def rule(types, attrs):
        if list(types) != [src] or attrs.get("to") is not dst:
            raise TypeError(f"expected {src} -> {dst}, got {types} -> {attrs.get('to')}")
        return [dst]
    return rule


def _to_f32(a):
    import struct
    try:
        return struct.unpack("f", struct.pack("f", a))[0]
    except OverflowError:
        return math.copysign(math.inf, a)


def _select(types, attrs):
    c, a, b = types
    if c is not I1 or a is not b:
        raise TypeError(f"select needs (i1, T, T), got {types}")
    return [a]


def _fpowi_rule(types, attrs):
    x, n = types
    if not x.is_float or n is not I64:
        raise TypeError(f"fpowi needs (float, i64), got {types}")
    return [x]


def _float_test(types, attrs):
    (t,) = types
    if not t.is_float:
        raise TypeError(f"expected a float operand, got {t}")
    return [I1]


def _const(types, attrs):
    return [attrs["type"]]


# --- reference semantics -----------------------------------------------------------------

_libm = ctypes.CDLL(ctypes.util.find_library("m"))


def _cfun(name, nargs=1, argtype=ctypes.c_double):
    f = getattr(_libm, name)
    f.restype = ctypes.c_double
    f.argtypes = [argtype] * nargs if argtype is ctypes.c_double else [ctypes.c_double, argtype]
    return lambda attrs, *a: float(f(*a))


_c_fmod = _libm.fmod
_c_fmod.restype = ctypes.c_double
_c_fmod.argtypes = [ctypes.c_double, ctypes.c_double]


def _fdiv(a, b):
    if b == 0.0:
        # IEEE division by zero, with the hardware's NaN (sign bit set on x86) for 0/0.
        return (a * math.inf) * math.copysign(1.0, b) if a == a and a != 0.0 else \
            (a - a) * math.inf if a == a else a
    return a / b


def _fmod(a, b):
    return float(_c_fmod(a, b))


def _floordiv(a, b):
    if b == 0:
        raise ZeroDivisionError("integer division or modulo by zero")
    if a == -(1 << 63) and b == -1:
        return a  # wraps, as the native code does
    return a // b


def _rem_trunc(a, b):
    if b == 0:
        raise ZeroDivisionError("integer division or modulo by zero")
    r = abs(a) % abs(b)
    return -r if a < 0 else r


def _powi(x, n):
    """compiler-rt's __powidf2: the integer power LLVM's llvm.powi lowers to."""
    recip = n < 0
    n = abs(n)
    r = 1.0
    while True:
        if n & 1:
            r *= x
        n >>= 1
        if n == 0:
            break
        x *= x
    return _fdiv(1.0, r) if recip else r


def _ipow(a, b):
    if b < 0:
        raise ValueError("integer power with a negative exponent")
    return wrap_i64(pow(a, b, 1 << 64))


def _fptosi(attrs, a):
    return wrap_i64(int(a)) if math.isfinite(a) else 0


def _roundeven(attrs, a):
    if not math.isfinite(a):
        return a
    r = float(round(a))
    return math.copysign(r, a)


def _cmpf(attrs, a, b):
    p = attrs["pred"]
    unordered = a != a or b != b
    if p == "oeq": return not unordered and a == b
    if p == "one": return not unordered and a != b
    if p == "olt": return not unordered and a < b
    if p == "ole": return not unordered and a <= b
    if p == "ogt": return not unordered and a > b
    if p == "oge": return not unordered and a >= b
    if p == "une": return unordered or a != b
    if p == "ueq": return unordered or a == b
    if p == "ord": return not unordered
    if p == "uno": return unordered
    raise ValueError(f"unknown cmpf predicate {p}")


_ICMP = {"eq": lambda a, b: a == b, "ne": lambda a, b: a != b, "slt": lambda a, b: a < b,
         "sle": lambda a, b: a <= b, "sgt": lambda a, b: a > b, "sge": lambda a, b: a >= b}


def _cmpi(attrs, a, b):
    return _ICMP[attrs["pred"]](a, b)


def _factorial(attrs, n):
    if n < 0:
        raise ValueError("factorial() not defined for negative values")
    if n > 20:
        raise OverflowError("factorial() result does not fit in a 64-bit int")
    return math.factorial(n)


def _raise_if(attrs, c):
    if c:
        import builtins
        raise getattr(builtins, attrs["exc"])(attrs["msg"])


# --- the table ---------------------------------------------------------------------------

fbin, ibin = _same("is_float"), _same("is_int")
funary = _same("is_float")

opdef("arith.constant", "const", _const, lambda attrs: attrs["value"])
opdef("arith.addf", "binary", fbin, lambda at, a, b: a + b)
opdef("arith.subf", "binary", fbin, lambda at, a, b: a - b)
opdef("arith.mulf", "binary", fbin, lambda at, a, b: a * b)
opdef("arith.divf", "binary", fbin, lambda at, a, b: _fdiv(a, b))
opdef("arith.remf", "binary", fbin, lambda at, a, b: _fmod(a, b))
opdef("arith.negf", "unary", funary, lambda at, a: -a)
opdef("arith.addi", "binary", ibin, lambda at, a, b: wrap_i64(a + b))
opdef("arith.subi", "binary", ibin, lambda at, a, b: wrap_i64(a - b))
opdef("arith.muli", "binary", ibin, lambda at, a, b: wrap_i64(a * b))
opdef("arith.floordivsi", "binary", ibin, lambda at, a, b: _floordiv(a, b))
opdef("arith.remsi", "binary", ibin, lambda at, a, b: _rem_trunc(a, b))
opdef("arith.andi", "binary", ibin, lambda at, a, b: a & b)
opdef("arith.ori", "binary", ibin, lambda at, a, b: a | b)
opdef("arith.xori", "binary", ibin, lambda at, a, b: a ^ b)
opdef("arith.cmpf", "cmp", _float_pred, _cmpf)
opdef("arith.cmpi", "cmp", _int_pred, _cmpi)
opdef("arith.select", "select", _select, lambda at, c, a, b: a if c else b)
opdef("arith.sitofp", "cast", _cast("is_int", "is_float"), lambda at, a: float(a))
opdef("arith.uitofp", "cast", _cast("is_int", "is_float"), lambda at, a: float(int(a)))
opdef("arith.fptosi", "cast", _cast("is_float", "is_int"), _fptosi)
opdef("arith.extui", "cast", _cast("is_int", "is_int"), lambda at, a: int(a))
# f32 <-> f64 (float32 arrays are read as f64 and rounded to f32 when written)
opdef("arith.extf", "cast", _fcast(F32, F64), lambda at, a: a)
opdef("arith.truncf", "cast", _fcast(F64, F32), lambda at, a: _to_f32(a))

for _name in ("sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "tanh", "asinh",
              "acosh", "atanh", "exp", "expm1", "exp2", "log", "log2", "log10", "log1p", "cbrt",
              "erf", "erfc"):
    opdef(f"math.{_name}", "unary", funary, _cfun(_name))
opdef("math.sqrt", "unary", funary, _cfun("sqrt"))
opdef("math.floor", "unary", funary, lambda at, a: float(math.floor(a)) if math.isfinite(a) else a)
opdef("math.ceil", "unary", funary, lambda at, a: float(math.ceil(a)) if math.isfinite(a) else a)
opdef("math.trunc", "unary", funary, lambda at, a: math.copysign(float(math.trunc(a)), a)
      if math.isfinite(a) else a)
opdef("math.roundeven", "unary", funary, _roundeven)
opdef("math.absf", "unary", funary, lambda at, a: abs(a))
opdef("math.atan2", "binary", fbin, _cfun("atan2", 2))
opdef("math.powf", "binary", fbin, _cfun("pow", 2))
opdef("math.copysign", "binary", fbin, lambda at, a, b: math.copysign(a, b))
# a * b + c rounded once (the AD passes use it to combine partial products); MLIR's math.fma.
opdef("math.fma", "ternary", fbin, _cfun("fma", 3))
opdef("math.fpowi", "fpowi", _fpowi_rule, lambda at, a, n: _powi(a, n))
opdef("math.ipowi", "binary", ibin, lambda at, a, b: _ipow(a, b))
opdef("math.isnan", "unary_pred", _float_test, lambda at, a: a != a)
opdef("math.isinf", "unary_pred", _float_test, lambda at, a: math.isinf(a))
opdef("math.isfinite", "unary_pred", _float_test, lambda at, a: math.isfinite(a))

# Ops MLIR's math dialect lacks print in generic form under `lldiff.`.
opdef("lldiff.hypot", "generic", fbin, _cfun("hypot", 2))
opdef("lldiff.lgamma", "generic", funary, _cfun("lgamma"))
opdef("lldiff.tgamma", "generic", funary, _cfun("tgamma"))
opdef("lldiff.factorial", "generic", _fixed([I64], I64), _factorial)
opdef("lldiff.raise_if", "generic", _fixed([I1], None), _raise_if, pure=False)

# Arrays (memref): load and store an element, read an extent. Indices are i64, already
# normalized (non-negative; the frontend adds the extent to negative ones and, with
# boundscheck, raises IndexError out of range): out-of-range access is undefined, as in numba.
# Attribute `shadow = true` (set by the AD passes) marks an access to a shadow or tangent
# array, memory that never overlaps the primal arrays: codegen tells LLVM so.
def _load_rule(types, attrs):
    m, *idx = types
    if not m.is_memref or len(idx) != m.rank or any(t is not I64 for t in idx):
        raise TypeError(f"lldiff.load needs (memref, {m.rank if m.is_memref else '?'} x i64), "
                        f"got {types}")
    return [m.elem]


def _store_rule(types, attrs):
    v, m, *idx = types
    if not m.is_memref or len(idx) != m.rank or any(t is not I64 for t in idx) or \
            v is not m.elem:
        raise TypeError(f"lldiff.store needs (elem, memref, rank x i64), got {types}")
    return []


def _dim_rule(types, attrs):
    (m,) = types
    if not m.is_memref or not 0 <= attrs.get("axis", -1) < m.rank:
        raise TypeError(f"lldiff.dim needs a memref and an axis < its rank, got {types}")
    return [I64]


def _store(at, v, a, *idx):
    a[idx] = v


def _alloc_rule(types, attrs):
    t = attrs["type"]
    if not t.is_memref or list(types) != [I64] * t.rank:
        raise TypeError(f"lldiff.alloc needs {t} and one i64 extent per dimension, got {types}")
    return [t]


def _alloc(at, *shape):
    import numpy as np
    t = at["type"]
    dtype = {"f64": np.float64, "f32": np.float32, "i64": np.int64}[str(t.elem)]
    fill = at.get("fill")
    return np.empty(shape, dtype) if fill is None else np.full(shape, fill, dtype)


# A new C-contiguous array (np.zeros / np.ones / np.empty), owned by the call that made it:
# freed when that call returns. Its type may be a strided memref (C strides are strides too):
# a zero tangent standing in for a strided array has the strided array's type. Not pure:
# never removed, moved or recomputed.
opdef("lldiff.alloc", "generic", _alloc_rule, _alloc, pure=False)
opdef("lldiff.load", "generic", _load_rule, lambda at, a, *idx: a[idx].item())
opdef("lldiff.store", "generic", _store_rule, _store, pure=False)
opdef("lldiff.dim", "generic", _dim_rule, lambda at, a: int(a.shape[at["axis"]]))


# Reverse-mode tape (passes/vjp.py emits the abstract pair, passes/tape.py materializes it).
# `ad.push {tape = k}` records a value for the reverse sweep; `ad.pop {tape = k, type = T}`
# takes back the most recent value of tape k (last in, first out). Materialized: `ad.tape`
# makes a handle (a stack, or with an i64 operand a buffer reserved for that many bytes),
# `ad.tape.push` / `ad.tape.pop` use it, `ad.tape.free` releases its heap memory. The
# interpreter runs both forms; all are effects, so DCE keeps them.
def _push_rule(types, attrs):
    if len(types) != 1 or not (types[0].is_float or types[0].is_int):
        raise TypeError(f"ad.push takes one scalar, got {types}")
    return []


def _pop_rule(types, attrs):
    if types:
        raise TypeError("ad.pop takes no operands")
    return [attrs["type"]]


def _tape_rule(types, attrs):
    if list(types) not in ([], [I64]):
        raise TypeError(f"ad.tape takes an optional i64 byte count, got {types}")
    return [TAPE]


def _tape_push_rule(types, attrs):
    if len(types) != 2 or types[0] is not TAPE:
        raise TypeError(f"ad.tape.push needs (!ad.tape, T), got {types}")
    return _push_rule(types[1:], attrs)


def _tape_use_rule(result):
    def rule(types, attrs):
        if list(types) != [TAPE]:
            raise TypeError(f"expected a !ad.tape operand, got {types}")
        return [attrs["type"]] if result else []
    return rule


opdef("ad.push", "generic", _push_rule, pure=False)
opdef("ad.pop", "generic", _pop_rule, pure=False)
opdef("ad.tape", "generic", _tape_rule, pure=False)
opdef("ad.tape.push", "generic", _tape_push_rule, pure=False)
opdef("ad.tape.pop", "generic", _tape_use_rule(True), pure=False)
opdef("ad.tape.free", "generic", _tape_use_rule(False), pure=False)
TAPE_OPS = ("ad.push", "ad.pop", "ad.tape", "ad.tape.push", "ad.tape.pop", "ad.tape.free")

# `ad.count(%n) {counter = k}`: adds i64 %n to the process-wide runtime counter k
# (runtime.COUNTERS: what checkpointing recomputed); an effect, so DCE keeps it.
opdef("ad.count", "generic", _fixed([I64], None), pure=False)

# `vector.broadcast %x : f64 to vector<8xf64>`: a uniform value in every lane. Only in the
# SPMD form (passes/spmd.py), which is made after differentiation.
def _broadcast_rule(types, attrs):
    (t,) = types
    to = attrs.get("to")
    if not (getattr(to, "is_vector", False) and to.elem is t):
        raise TypeError(f"vector.broadcast needs T -> vector<WxT>, got {t} -> {to}")
    return [to]


opdef("vector.broadcast", "cast", _broadcast_rule)
# `lldiff.max_lanes(%n)`: the largest value of i64 %n over the active SIMD lanes, the same in
# every lane; in scalar code (one lane) it is %n. passes/spmd.py uses it to align loops whose
# trip count differs per lane at their end.
opdef("lldiff.max_lanes", "generic", _fixed([I64], I64), lambda at, n: n)

# Structured control flow and functions: type rules are checked by the verifier directly.
for _name in ("scf.if", "scf.for", "scf.while", "scf.yield", "scf.condition", "func.return",
              "func.call"):
    opdef(_name, "special", None, pure=_name in ("scf.if", "scf.for", "scf.while", "func.call"))
