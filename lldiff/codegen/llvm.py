"""Lowers lldiff IR to LLVM IR (llvmlite.ir): structured control flow to blocks and phis.

ABI of a compiled function: `i32 @sym(args..., ptr out0, ...)` returns a status (0 = ok, k > 0
= the k-th entry of the module's error table, raised as a Python exception by the entry point)
and writes its results through the out pointers. Math goes to LLVM intrinsics where LLVM has a
libm-backed one, otherwise straight to libm; integer powers use our own square-and-multiply
functions (the same algorithm as compiler-rt's __powidf2, which the interpreter mirrors).

Owns the op -> LLVM mapping (`LOWER`, one entry per IR op). Must not import llvmlite.binding
or know about derivatives.
"""

import math

from llvmlite import ir as L

from ..ir import F32, F64, I1, I64

__all__ = ["emit_module", "LOWER", "llvm_type", "ErrorTable"]

I32 = L.IntType(32)
PTR = L.IntType(8).as_pointer()
# A reverse-mode tape is three stack slots of the function -- base, size and capacity in bytes
# -- plus an inline buffer of TAPE_INLINE_BYTES in the same frame. The slots never escape (the
# grow helper takes and returns values), so LLVM keeps them in registers inside loops.
# `lldiff.tape.reserve` moves the tape to the heap (malloc, then realloc doubling).
TAPE_INLINE_BYTES = 4096
_RESERVED = L.LiteralStructType([PTR, L.IntType(64)])  # (new base or null, new capacity)
_T = {F64: L.DoubleType(), F32: L.FloatType(), I64: L.IntType(64), I1: L.IntType(1)}


# Process-wide i64 counters compiled code updates atomically (an external symbol the loader
# binds: runtime.counters() reads them): the heap bytes tapes hold now and at their peak, and
# what checkpointed loops did (ad.count).
COUNTERS = "lldiff.counters"
COUNTER_SLOTS = ("tape_bytes", "tape_peak", "recomputed_steps", "snapshots")


def counter_ptr(bd, name):
    """Pointer to the process-wide counter `name` (one of COUNTER_SLOTS)."""
    lm = bd.module
    g = lm.globals.get(COUNTERS)
    if g is None:
        g = L.GlobalVariable(lm, L.ArrayType(L.IntType(64), len(COUNTER_SLOTS)), name=COUNTERS)
        g.linkage = "external"
    i32 = L.IntType(32)
    return bd.gep(g, [L.Constant(i32, 0), L.Constant(i32, COUNTER_SLOTS.index(name))],
                  inbounds=True)


class _Tape:
    """A tape's stack slots in the frame; `align`: the alignment every entry has (see
    `_tape_alignments`)."""
    __slots__ = ("base", "size", "cap", "inline", "align")

    def __init__(self, base, size, cap, inline, align=1):
        self.base, self.size, self.cap, self.inline = base, size, cap, inline
        self.align = align


def _undef_from(phi, sites):
    """`phi` takes undef from the error sites (status, block) entering its block."""
    for _, blk in sites or ():
        phi.add_incoming(L.Constant(phi.type, L.Undefined), blk)


def _slot_bytes(t):
    return max(1, t.width // 8)


def _tape_alignments(f):
    """Tape handle -> the alignment of every entry on it: the gcd of the sizes of the entries
    pushed (at most 8). Entries are packed, each at the sum of the sizes below it, from a
    base aligned to 16 (the inline buffer; malloc'd memory), so a tape of f64 entries alone
    has 8-byte aligned entries. This matters on the GPU: an align-1 load of an f64 from local
    memory is eight byte loads."""
    sizes = {}
    for op in f.walk():
        if op.name == "ad.tape.push":
            h = op.operands[0]
            sizes[h] = math.gcd(sizes.get(h, 8), _slot_bytes(op.operands[1].type))
    return sizes


def llvm_type(t):
    got = _T.get(t)
    if got is None and t.is_vector:  # the SPMD form's lanes (codegen/spmd.py)
        got = _T[t] = L.VectorType(llvm_type(t.elem), t.lanes)
    if got is None and t.is_memref:
        # {data, shape[rank], strides[rank] in elements}; a contiguous memref ignores the
        # strides (C order), so LLVM sees unit stride and can vectorize
        i64 = L.IntType(64)
        got = _T[t] = L.LiteralStructType([llvm_type(t.elem).as_pointer(),
                                           L.ArrayType(i64, t.rank), L.ArrayType(i64, t.rank)])
    return got


def _element_ptr(fe, m, mt, idx):
    """Address of element `idx` of memref value `m` (type `mt`)."""
    bd = fe.bd
    data = bd.extract_value(m, 0)
    if mt.contiguous:
        off = idx[0]
        for k in range(1, mt.rank):
            off = bd.add(bd.mul(off, bd.extract_value(m, [1, k])), idx[k])
    else:
        off = None
        for k in range(mt.rank):
            term = bd.mul(idx[k], bd.extract_value(m, [2, k]))
            off = term if off is None else bd.add(off, term)
    return bd.gep(data, [off], inbounds=True)


def _load(fe, op, a):
    inst = fe.bd.load(_element_ptr(fe, a[0], op.operands[0].type, a[1:]))
    fe.alias_info(inst, op)
    return [inst]


def _store(fe, op, a):
    inst = fe.bd.store(a[0], _element_ptr(fe, a[1], op.operands[1].type, a[2:]))
    fe.alias_info(inst, op)
    return []


def _dim(fe, op, a):
    return [fe.bd.extract_value(a[0], [1, op.attrs["axis"]])]


class ErrorTable:
    """(exception name, message) pairs; status code k is entry k - 1."""

    def __init__(self):
        self.entries = []

    def code(self, exc, msg):
        key = (exc, msg)
        if key not in self.entries:
            self.entries.append(key)
        return self.entries.index(key) + 1


def emit_module(module, exported, name="lldiff", fastmath=False, target="cpu",
                vector_math=None, vector_pow=False):
    """Return (llvmlite.ir.Module, ErrorTable); `exported` functions get external linkage.
    `target` "nvptx": math calls go to libdevice (`__nv_sin`, ...: NVPTX cannot select
    llvm.sin and friends), sin/cos are not paired, and tapes never leave their inline
    buffer (a tape that outgrows it is a MemoryError: no heap in a GPU thread). `target`
    "gpu-emulated": the same GPU-thread semantics with host math (libm), for running a GPU
    kernel's logic on the CPU (tests without a GPU). `vector_math`: (lanes, ISA letter,
    names) of libmvec functions the SPMD form may call (codegen/spmd.py), or None.
    `vector_pow`: the SPMD form computes pow in vector code (vmath.py), which is bit-equal
    to libm's only where libm is glibc's pow (runtime's Engine.glibc_pow)."""
    lm = L.Module(name=name)
    errors = ErrorTable()
    ctx = _ModuleCtx(lm, errors)
    ctx.fastmath = fastmath
    ctx.target = target
    ctx.vector_math = vector_math
    ctx.vector_pow = vector_pow
    for f in module:
        ctx.declare(f, exported=f.name in exported)
    for f in module:
        if "spmd" in f.attrs:  # the W-lane form of a function (passes/spmd.py)
            from .spmd import LaneEmitter
            LaneEmitter(ctx, f).emit()
        else:
            _FuncEmitter(ctx, f).emit()
    return lm, errors


class _ModuleCtx:
    def __init__(self, lm, errors):
        self.fastmath = False
        self.target = "cpu"
        self.vector_math = None
        self.vector_pow = False
        self.lm = lm
        self.errors = errors
        self.funcs = {}
        self.ir_funcs = {}
        self.helpers = {}
        self._shadow_scope = None

    def declare(self, f, exported):
        args = [llvm_type(t) for t in f.arg_types] + [llvm_type(t).as_pointer()
                                                       for t in f.result_types]
        fn = L.Function(self.lm, L.FunctionType(I32, args), name=f.name)
        if not exported:
            fn.linkage = "internal"
        fn.attributes.add("nounwind")
        for a in fn.args[len(f.arg_types):]:
            a.add_attribute("noalias")
        self.funcs[f.name] = fn
        self.ir_funcs[f.name] = f

    def intrinsic(self, name, types, ret=None):
        if self.target == "nvptx" and name != "llvm.memcpy":  # (not "gpu-emulated")
            name = libdevice_name(name, types[0])
        key = (name, tuple(str(t) for t in types))
        fn = self.helpers.get(key)
        if fn is None and isinstance(types[0], L.VectorType):  # llvmlite cannot mangle these
            fty = L.FunctionType(ret or types[0], types)
            full = f"{name}.{mangle(types[0])}"  # (vmath.py may have declared it)
            fn = self.helpers[key] = self.lm.globals.get(full) or L.Function(self.lm, fty,
                                                                             full)
        if fn is None:
            if name.startswith("llvm."):
                fty = L.FunctionType(ret or types[0], types)
                fn = self.lm.declare_intrinsic(name, [types[0]], fty)
            else:
                fty = L.FunctionType(ret or types[0], types)
                fn = self.lm.globals.get(name) or L.Function(self.lm, fty, name=name)
            self.helpers[key] = fn
        return fn

    def shadow_scope(self):
        """The alias-scope list naming shadow memory (made once per module)."""
        if self._shadow_scope is None:
            lm = self.lm
            domain = lm.add_metadata([L.MetaDataString(lm, "lldiff.memory")])
            scope = lm.add_metadata([L.MetaDataString(lm, "lldiff.shadow"), domain])
            self._shadow_scope = lm.add_metadata([scope])
        return self._shadow_scope

    def helper(self, name, build):
        fn = self.helpers.get(name) or self.lm.globals.get(name)  # (vmath.py's declarations)
        if fn is None:
            fn = build(self.lm, name)
            self.helpers[name] = fn
        return fn


# --- per-op lowering ----------------------------------------------------------------------

def _bin(method):
    return lambda fe, op, a: [getattr(fe.bd, method)(*a)]


# `fastmath=True` (lldiff.jit): float arithmetic may be reassociated and contracted (a sum
# becomes vector partial sums, a*b+c an fma), as numba's fastmath allows; NaN, infinities and
# signed zeros keep their IEEE meaning (no nnan/ninf/nsz).
FASTMATH_FLAGS = ("reassoc", "contract")


def _fbin(method):
    def lower(fe, op, a):
        inst = getattr(fe.bd, method)(*a)
        if fe.ctx.fastmath:
            inst.flags.extend(FASTMATH_FLAGS)
        return [inst]
    return lower


def _intrinsic(name):
    def lower(fe, op, a):
        fn = fe.ctx.intrinsic(name, [a[0].type] * len(a))
        return [fe.bd.call(fn, a)]
    return lower


def _libm(name):
    def lower(fe, op, a):
        fname = name if a[0].type == L.DoubleType() else name + "f"
        fn = fe.ctx.intrinsic(fname, [a[0].type] * len(a), a[0].type)
        pure(fn)
        return [fe.bd.call(fn, a)]
    return lower


def pure(fn):
    """Declares a libm function free of side effects, as clang does under -fno-math-errno,
    and defined for every argument: lldiff never reads errno (nor lgamma's signgam), so LLVM
    may fold, CSE and hoist calls out of loops and branches (a tgamma of a uniform argument
    leaves the map kernel's loop, from behind the branches of earlier checks)."""
    fn.attributes.add("readnone")
    fn.attributes.add("nounwind")
    set.add(fn.attributes, "speculatable")  # (llvmlite's list of attributes lacks it)
    return fn


_FCMP = {"oeq": (True, "=="), "one": (True, "!="), "olt": (True, "<"), "ole": (True, "<="),
         "ogt": (True, ">"), "oge": (True, ">="), "ord": (True, "ord"), "ueq": (False, "=="),
         "une": (False, "!="), "ult": (False, "<"), "ule": (False, "<="), "ugt": (False, ">"),
         "uge": (False, ">="), "uno": (False, "uno")}
_ICMP = {"eq": "==", "ne": "!=", "slt": "<", "sle": "<=", "sgt": ">", "sge": ">="}


def _cmpf(fe, op, a):
    ordered, sym = _FCMP[op.attrs["pred"]]
    f = fe.bd.fcmp_ordered if ordered else fe.bd.fcmp_unordered
    return [f(sym, *a)]


def _cmpi(fe, op, a):
    return [fe.bd.icmp_signed(_ICMP[op.attrs["pred"]], *a)]


def _safe_divisor(fe, b):
    """b with -1 replaced by 1 (sdiv INT_MIN, -1 traps); returns (b', is_minus_one)."""
    m1 = fe.bd.icmp_signed("==", b, L.Constant(b.type, -1))
    return fe.bd.select(m1, L.Constant(b.type, 1), b), m1


def _floordivsi(fe, op, a):
    x, y = a
    bd = fe.bd
    ys, m1 = _safe_divisor(fe, y)
    q = bd.sdiv(x, ys)
    r = bd.srem(x, ys)
    zero = L.Constant(x.type, 0)
    adjust = bd.and_(bd.icmp_signed("!=", r, zero),
                     bd.icmp_signed("<", bd.xor(r, y), zero))
    q = bd.sub(q, bd.zext(adjust, x.type))
    return [bd.select(m1, bd.sub(zero, x), q)]


def _remsi(fe, op, a):
    x, y = a
    ys, m1 = _safe_divisor(fe, y)
    return [fe.bd.srem(x, ys)]


def _cast(method):
    return lambda fe, op, a: [getattr(fe.bd, method)(a[0], llvm_type(op.results[0].type))]


def _isnan(fe, op, a):
    return [fe.bd.fcmp_unordered("uno", a[0], a[0])]


def const_of(t, v):
    """The constant `v` of LLVM type `t`; of a vector type, `v` in every lane."""
    return L.Constant(t, [v] * t.count if isinstance(t, L.VectorType) else v)


def _isinf(fe, op, a):
    fabs = fe.ctx.intrinsic("llvm.fabs", [a[0].type])
    return [fe.bd.fcmp_ordered("==", fe.bd.call(fabs, a), const_of(a[0].type, float("inf")))]


def _isfinite(fe, op, a):
    fabs = fe.ctx.intrinsic("llvm.fabs", [a[0].type])
    return [fe.bd.fcmp_ordered("<", fe.bd.call(fabs, a), const_of(a[0].type, float("inf")))]


def _fpowi(fe, op, a):
    fn = fe.ctx.helper(f"lldiff.powi.{a[0].type}", lambda lm, n: _build_powi(lm, n, a[0].type))
    return [fe.bd.call(fn, a)]


def _ipowi(fe, op, a):
    fn = fe.ctx.helper("lldiff.ipow", _build_ipow)
    return [fe.bd.call(fn, a)]


def _factorial(fe, op, a):
    def build(lm, name):
        import math
        arr = L.ArrayType(L.IntType(64), 21)
        g = L.GlobalVariable(lm, arr, name=name)
        g.initializer = L.Constant(arr, [math.factorial(i) for i in range(21)])
        g.global_constant = True
        g.linkage = "internal"
        return g
    table = fe.ctx.helper("lldiff.factorial_table", build)
    ptr = fe.bd.gep(table, [L.Constant(I32, 0), a[0]], inbounds=True)
    return [fe.bd.load(ptr)]


def mangle(t):
    """An LLVM type's suffix in overloaded intrinsic names: f64, v8f64, v8i1, v8p0."""
    if isinstance(t, L.VectorType):
        return f"v{t.count}{mangle(t.element)}"
    if isinstance(t, L.PointerType):
        return "p0"
    return {L.DoubleType(): "f64", L.FloatType(): "f32"}.get(t) or f"i{t.width}"


def splat(bd, v, count):
    """<count x T> with scalar `v` in every lane."""
    vt = L.VectorType(v.type, count)
    if isinstance(v, L.Constant):
        return L.Constant(vt, [v.constant] * count)
    one = bd.insert_element(L.Constant(vt, None), v, L.Constant(I32, 0))
    return bd.shuffle_vector(one, one, L.Constant(L.VectorType(I32, count), [0] * count))


def _constant(fe, op, a):
    t = op.attrs["type"]
    v = op.attrs["value"]
    return [L.Constant(llvm_type(t), int(v) if t.is_int else v)]


LOWER = {
    "arith.constant": _constant,
    "arith.addf": _fbin("fadd"), "arith.subf": _fbin("fsub"), "arith.mulf": _fbin("fmul"),
    "arith.divf": _fbin("fdiv"), "arith.remf": _bin("frem"),
    "arith.negf": lambda fe, op, a: [fe.bd.fneg(a[0])],
    "arith.addi": _bin("add"), "arith.subi": _bin("sub"), "arith.muli": _bin("mul"),
    "arith.floordivsi": _floordivsi, "arith.remsi": _remsi,
    "arith.andi": _bin("and_"), "arith.ori": _bin("or_"), "arith.xori": _bin("xor"),
    "arith.cmpf": _cmpf, "arith.cmpi": _cmpi,
    "arith.select": lambda fe, op, a: [fe.bd.select(*a)],
    "arith.sitofp": _cast("sitofp"), "arith.uitofp": _cast("uitofp"),
    "arith.fptosi": _cast("fptosi"), "arith.extui": _cast("zext"),
    "arith.extf": _cast("fpext"), "arith.truncf": _cast("fptrunc"),
    "lldiff.load": _load, "lldiff.store": _store, "lldiff.dim": _dim,
    "math.sqrt": _intrinsic("llvm.sqrt"), "math.sin": _intrinsic("llvm.sin"),
    "math.cos": _intrinsic("llvm.cos"), "math.exp": _intrinsic("llvm.exp"),
    "math.exp2": _intrinsic("llvm.exp2"), "math.log": _intrinsic("llvm.log"),
    "math.log2": _intrinsic("llvm.log2"), "math.log10": _intrinsic("llvm.log10"),
    "math.powf": _intrinsic("llvm.pow"), "math.absf": _intrinsic("llvm.fabs"),
    "math.floor": _intrinsic("llvm.floor"), "math.ceil": _intrinsic("llvm.ceil"),
    "math.trunc": _intrinsic("llvm.trunc"), "math.roundeven": _intrinsic("llvm.roundeven"),
    "math.copysign": _intrinsic("llvm.copysign"), "math.fma": _intrinsic("llvm.fma"),
    "math.tan": _libm("tan"), "math.asin": _libm("asin"), "math.acos": _libm("acos"),
    "math.atan": _libm("atan"), "math.atan2": _libm("atan2"), "math.sinh": _libm("sinh"),
    "math.cosh": _libm("cosh"), "math.tanh": _libm("tanh"), "math.asinh": _libm("asinh"),
    "math.acosh": _libm("acosh"), "math.atanh": _libm("atanh"), "math.expm1": _libm("expm1"),
    "math.log1p": _libm("log1p"), "math.cbrt": _libm("cbrt"), "math.erf": _libm("erf"),
    "math.erfc": _libm("erfc"), "lldiff.hypot": _libm("hypot"),
    "lldiff.lgamma": _libm("lgamma"), "lldiff.tgamma": _libm("tgamma"),
    "math.isnan": _isnan, "math.isinf": _isinf, "math.isfinite": _isfinite,
    "math.fpowi": _fpowi, "math.ipowi": _ipowi, "lldiff.factorial": _factorial,
    "vector.broadcast": lambda fe, op, a: [splat(fe.bd, a[0], op.results[0].type.lanes)],
    "lldiff.max_lanes": lambda fe, op, a: [a[0]],  # one lane (codegen/spmd.py: several)
}
# Handled by _FuncEmitter itself: control flow, calls, returns, raise_if, array allocation and
# tapes (ad.push and ad.pop must have been materialized by passes/tape.py before codegen).
STRUCTURAL = {"scf.if", "scf.for", "scf.while", "scf.yield", "scf.condition", "func.return",
              "func.call", "lldiff.raise_if", "lldiff.alloc", "ad.tape", "ad.tape.push",
              "ad.tape.pop", "ad.tape.free", "ad.count"}


def _build_free_list(lm, name):
    """void free_list(ptr head): free every block of a call's list of arrays."""
    fn = L.Function(lm, L.FunctionType(L.VoidType(), [PTR]), name=name)
    fn.linkage = "internal"
    free = lm.globals.get("free") or L.Function(lm, L.FunctionType(L.VoidType(), [PTR]), "free")
    entry, loop, done = (fn.append_basic_block(s) for s in ("entry", "loop", "done"))
    bd = L.IRBuilder(entry)
    bd.cbranch(bd.icmp_unsigned("==", fn.args[0], L.Constant(PTR, None)), done, loop)
    bd.position_at_end(loop)
    p = bd.phi(PTR)
    p.add_incoming(fn.args[0], entry)
    nxt = bd.load(bd.bitcast(p, PTR.as_pointer()))
    bd.call(free, [p])
    p.add_incoming(nxt, loop)
    bd.cbranch(bd.icmp_unsigned("==", nxt, L.Constant(PTR, None)), done, loop)
    bd.position_at_end(done)
    bd.ret_void()
    return fn


def _build_unlink(lm, name):
    """void unlink(ptr* head, ptr block): take `block` out of a call's list of arrays."""
    fn = L.Function(lm, L.FunctionType(L.VoidType(), [PTR.as_pointer(), PTR]), name=name)
    fn.linkage = "internal"
    head, block = fn.args
    entry, loop, found, done = (fn.append_basic_block(s) for s in ("entry", "loop", "found",
                                                                   "done"))
    bd = L.IRBuilder(entry)
    bd.branch(loop)
    bd.position_at_end(loop)
    link = bd.phi(PTR.as_pointer())  # the slot that points at the current node
    link.add_incoming(head, entry)
    node = bd.load(link)
    null = bd.icmp_unsigned("==", node, L.Constant(PTR, None))
    is_it = bd.icmp_unsigned("==", node, block)
    nxt_link = bd.bitcast(node, PTR.as_pointer())
    check = fn.append_basic_block("check")
    bd.cbranch(null, done, check)
    bd.position_at_end(check)
    link.add_incoming(nxt_link, check)
    bd.cbranch(is_it, found, loop)
    bd.position_at_end(found)
    bd.store(bd.load(nxt_link), link)
    bd.branch(done)
    bd.position_at_end(done)
    bd.ret_void()
    return fn


def _build_reserve(lm, name):
    """{ptr, i64} reserve(ptr base, i64 size, i64 cap, ptr inline, i64 need): a buffer of at
    least `need` bytes holding the first `size` bytes of `base`; null on failure."""
    i64 = L.IntType(64)
    fn = L.Function(lm, L.FunctionType(_RESERVED, [PTR, i64, i64, PTR, i64]), name=name)
    fn.linkage = "internal"
    fn.attributes.add("noinline")
    fn.attributes.add("cold")
    base, size, cap, inline, need = fn.args
    malloc = lm.globals.get("malloc") or L.Function(lm, L.FunctionType(PTR, [i64]), "malloc")
    realloc = lm.globals.get("realloc") or L.Function(
        lm, L.FunctionType(PTR, [PTR, i64]), "realloc")
    memcpy = lm.declare_intrinsic("llvm.memcpy", [PTR, PTR, i64])
    entry, fresh, again, copy, done = (fn.append_basic_block(s) for s in (
        "entry", "fresh", "again", "copy", "done"))
    bd = L.IRBuilder(entry)
    dbl = bd.shl(cap, L.Constant(i64, 1))
    newcap = bd.select(bd.icmp_unsigned(">", dbl, need), dbl, need)
    bd.cbranch(bd.icmp_unsigned("==", base, inline), fresh, again)
    bd.position_at_end(fresh)
    p1 = bd.call(malloc, [newcap])
    bd.cbranch(bd.icmp_unsigned("==", p1, L.Constant(PTR, None)), done, copy)
    bd.position_at_end(copy)
    bd.call(memcpy, [p1, base, size, L.Constant(L.IntType(1), 0)])
    bd.branch(done)
    bd.position_at_end(again)
    p2 = bd.call(realloc, [base, newcap])
    bd.branch(done)
    bd.position_at_end(done)
    p = bd.phi(PTR)
    p.add_incoming(p1, fresh)
    p.add_incoming(p1, copy)
    p.add_incoming(p2, again)
    count, ret = fn.append_basic_block("count"), fn.append_basic_block("ret")
    bd.cbranch(bd.icmp_unsigned("==", p, L.Constant(PTR, None)), ret, count)
    bd.position_at_end(count)
    # the runtime's tape byte counters: what this tape holds on the heap grew by
    # newcap - (its old heap capacity, none while it was inline)
    held = bd.select(bd.icmp_unsigned("==", base, inline), L.Constant(i64, 0), cap)
    delta = bd.sub(newcap, held)
    now = bd.add(bd.atomic_rmw("add", counter_ptr(bd, "tape_bytes"), delta, "monotonic"),
                 delta)
    bd.atomic_rmw("max", counter_ptr(bd, "tape_peak"), now, "monotonic")
    bd.branch(ret)
    bd.position_at_end(ret)
    r = bd.insert_value(L.Constant(_RESERVED, None), p, 0)
    bd.ret(bd.insert_value(r, newcap, 1))
    return fn


def _build_powi(lm, name, ft):
    """double powi(double x, i64 n): compiler-rt's __powidf2 algorithm, 64-bit exponent.
    `ft` may be a vector type: every lane at once, the same results lane by lane (the SPMD
    form's fpowi with a uniform exponent, codegen/spmd.py)."""

    i64 = L.IntType(64)
    fn = L.Function(lm, L.FunctionType(ft, [ft, i64]), name=name)
    fn.linkage = "internal"
    fn.attributes.add("alwaysinline")
    x, n = fn.args
    entry, loop, done = (fn.append_basic_block(s) for s in ("entry", "loop", "done"))
    bd = L.IRBuilder(entry)
    neg = bd.icmp_signed("<", n, L.Constant(i64, 0))
    mag = bd.select(neg, bd.sub(L.Constant(i64, 0), n), n)
    bd.branch(loop)
    bd.position_at_end(loop)
    r = bd.phi(ft)
    b = bd.phi(i64)
    a = bd.phi(ft)
    odd = bd.trunc(b, L.IntType(1))
    r2 = bd.select(odd, bd.fmul(r, a), r)
    b2 = bd.lshr(b, L.Constant(i64, 1))
    a2 = bd.fmul(a, a)
    fin = bd.icmp_unsigned("==", b2, L.Constant(i64, 0))
    bd.cbranch(fin, done, loop)
    r.add_incoming(const_of(ft, 1.0), entry)
    r.add_incoming(r2, loop)
    b.add_incoming(mag, entry)
    b.add_incoming(b2, loop)
    a.add_incoming(x, entry)
    a.add_incoming(a2, loop)
    bd.position_at_end(done)
    bd.ret(bd.select(neg, bd.fdiv(const_of(ft, 1.0), r2), r2))
    return fn


def _build_ipow(lm, name):
    """i64 ipow(i64 a, i64 b) for b >= 0, wrapping like the interpreter."""
    i64 = L.IntType(64)
    fn = L.Function(lm, L.FunctionType(i64, [i64, i64]), name=name)
    fn.linkage = "internal"
    a0, b0 = fn.args
    entry, loop, body, done = (fn.append_basic_block(s) for s in ("entry", "loop", "body", "done"))
    bd = L.IRBuilder(entry)
    bd.branch(loop)
    bd.position_at_end(loop)
    r = bd.phi(i64)
    b = bd.phi(i64)
    a = bd.phi(i64)
    more = bd.icmp_signed(">", b, L.Constant(i64, 0))
    bd.cbranch(more, body, done)
    bd.position_at_end(body)
    odd = bd.trunc(b, L.IntType(1))
    r2 = bd.select(odd, bd.mul(r, a), r)
    b2 = bd.ashr(b, L.Constant(i64, 1))
    a2 = bd.mul(a, a)
    bd.branch(loop)
    r.add_incoming(L.Constant(i64, 1), entry)
    r.add_incoming(r2, body)
    b.add_incoming(b0, entry)
    b.add_incoming(b2, body)
    a.add_incoming(a0, entry)
    a.add_incoming(a2, body)
    bd.position_at_end(done)
    bd.ret(r)
    return fn


def libdevice_name(name, t):
    """The libdevice function for intrinsic or libm function `name` on LLVM type `t`:
    llvm.sin -> __nv_sin (f64) / __nv_sinf (f32), tan -> __nv_tan, tanf -> __nv_tanf."""
    if name.startswith("llvm."):
        base = {"roundeven": "rint"}.get(name[5:], name[5:])
        return "__nv_" + base + ("f" if t == L.FloatType() else "")
    return "__nv_" + name


def _sincos_pairs(block):
    """The math.sin and math.cos ops of `block` whose operand has both in this block."""
    seen = {}
    for op in block.ops:
        if op.name in ("math.sin", "math.cos"):
            seen.setdefault(op.operands[0], []).append(op)
    return {op for ops in seen.values() if len({o.name for o in ops}) == 2 for op in ops}


class _FuncEmitter:
    def __init__(self, ctx, f):
        self.ctx = ctx
        self.f = f
        self.fn = ctx.funcs[f.name]
        self.vals = {}
        self.bd = None

    def emit(self):
        f, fn = self.f, self.fn
        entry = fn.append_basic_block("entry")
        self.alloca_bd = L.IRBuilder(entry)
        body = fn.append_basic_block("body")
        self.bd = L.IRBuilder(body)
        for a, la in zip(f.args, fn.args):
            self.vals[a] = la
            la.name = (a.hint or "arg").lstrip(".")
        self.outs = fn.args[len(f.args):]
        self.sincos_done = {}
        self.has_shadows = any(op.attrs.get("shadow") for op in f.walk())
        self.tapes = {}
        self.error_exits = []  # GPU: [(end block, [(status, block)])] of enclosing constructs
        self.allocs = None  # head of this call's list of arrays (lldiff.alloc), if any
        aligns = _tape_alignments(f)
        for op in f.walk():
            if op.name == "ad.tape":
                self.tapes[op.result] = self.new_tape()
                self.tapes[op.result].align = aligns.get(op.result, 1)
            elif self.allocs is None and (op.name == "lldiff.alloc" or op.name == "func.call"
                                          and any(r.type.is_memref for r in op.results)):
                self.allocs = self.alloca_bd.alloca(PTR, name="arrays")
                self.alloca_bd.store(L.Constant(PTR, None), self.allocs)
        self.block(f.body.block)
        self.alloca_bd.branch(body)

    def new_tape(self):
        """An empty tape in this frame, using its inline buffer (slots set up at entry)."""
        bd = self.alloca_bd
        i64 = L.IntType(64)
        buf = bd.alloca(L.ArrayType(L.IntType(8), TAPE_INLINE_BYTES), name="tape.inline")
        buf.align = 16
        inline = bd.bitcast(buf, PTR)
        t = _Tape(bd.alloca(PTR, name="tape.base"), bd.alloca(i64, name="tape.size"),
                  bd.alloca(i64, name="tape.cap"), inline)
        bd.store(inline, t.base)
        bd.store(L.Constant(i64, 0), t.size)
        bd.store(L.Constant(i64, TAPE_INLINE_BYTES), t.cap)
        return t

    def free_tape(self, t):
        bd = self.bd
        if self.ctx.target != "cpu":  # a GPU thread's tape is never on the heap
            return
        base = bd.load(t.base)
        free = self.ctx.lm.globals.get("free") or L.Function(
            self.ctx.lm, L.FunctionType(L.VoidType(), [PTR]), "free")
        with bd.if_then(bd.icmp_unsigned("!=", base, t.inline)):
            bd.call(free, [base])
            bd.atomic_rmw("sub", counter_ptr(bd, "tape_bytes"), bd.load(t.cap), "monotonic")
        bd.store(t.inline, t.base)
        bd.store(L.Constant(L.IntType(64), TAPE_INLINE_BYTES), t.cap)

    # --- errors inside structured control flow ------------------------------------------------
    # A GPU warp reconverges at the immediate post-dominator of a divergent branch. An error
    # returning from inside a loop makes that the function's end, so threads leaving a loop at
    # different iterations ran all that follows it (a reverse sweep) group by group: the
    # Bessel gradient ran with 3.9 of 32 threads active (H100, ncu). On GPU targets an error
    # inside scf.if/for/while leaves through the construct's own end block, carrying its
    # status, and is passed on from there; threads then meet again after every construct.
    # The CPU keeps direct returns.

    def fail(self, status):
        """Leave with error `status` (an i32 value): through the end of the innermost
        enclosing construct on a GPU target, else by returning it."""
        if not self.error_exits:
            self.ret_status(status)
            return
        end, sites = self.error_exits[-1]
        sites.append((status, self.bd.block))
        self.bd.branch(end)

    def enter_construct(self, end):
        """Errors inside the construct ending at block `end` go to `end` (GPU targets);
        returns the list their (status, block) pairs collect in, or None."""
        if self.ctx.target == "cpu":
            return None
        self.error_exits.append((end, []))
        return self.error_exits[-1][1]

    def leave_construct(self, sites, normal):
        """In the construct's end block, after its result phis (which take undef from the
        error `sites`): pass an error that came in on; `normal`: the blocks entering the end
        without one."""
        if sites is None:
            return
        self.error_exits.pop()
        if not sites:
            return
        bd = self.bd
        status = bd.phi(I32, name="status")
        for blk in normal:
            status.add_incoming(L.Constant(I32, 0), blk)
        for code, blk in sites:
            status.add_incoming(code, blk)
        failed, cont = self.new_block("failed"), self.new_block("ok")
        bd.cbranch(bd.icmp_signed("!=", status, L.Constant(I32, 0)), failed, cont)
        bd.position_at_end(failed)
        self.fail(status)
        bd.position_at_end(cont)

    def ret_status(self, status):
        """Return `status` (an error) after releasing this frame's tapes and arrays."""
        for t in self.tapes.values():
            self.free_tape(t)
        self.free_arrays()
        self.bd.ret(status)

    def alias_info(self, inst, op):
        """Shadow/tangent arrays never overlap primal arrays (the AD passes and lldiff's API
        make them): one alias scope for shadow accesses, `noalias` of it on the others, so
        LLVM can keep primal values in registers and vectorize across shadow updates."""
        if not self.has_shadows:
            return
        scope = self.ctx.shadow_scope()
        inst.set_metadata("alias.scope" if op.attrs.get("shadow") else "noalias", scope)

    def memory_error_if_null(self, ptr, msg):
        """Return MemoryError(msg) (after the usual cleanup) when `ptr` is null."""
        bd = self.bd
        code = self.ctx.errors.code("MemoryError", msg)
        fail, cont = self.new_block("out_of_memory"), self.new_block("allocated")
        bd.cbranch(bd.icmp_unsigned("==", ptr, L.Constant(PTR, None)), fail, cont)
        bd.position_at_end(fail)
        self.fail(L.Constant(I32, code))
        bd.position_at_end(cont)

    def free_arrays(self):
        if self.allocs is not None:
            fn = self.ctx.helper("lldiff.free_list", _build_free_list)
            self.bd.call(fn, [self.bd.load(self.allocs)])

    def op_lldiff_alloc(self, op):
        """malloc (calloc for zeros) a block: a 16-byte header linking it into this call's
        list of arrays, then the elements. MemoryError when the heap says no."""
        bd = self.bd
        i64 = L.IntType(64)
        t = op.results[0].type
        elem = llvm_type(t.elem)
        dims = [self.vals[v] for v in op.operands]
        count = dims[0]
        for d in dims[1:]:
            count = bd.mul(count, d)
        nbytes = bd.add(bd.mul(count, L.Constant(i64, t.elem.width // 8)), L.Constant(i64, 16))
        fill = op.attrs.get("fill")
        lm = self.ctx.lm
        if fill == 0.0:
            calloc = lm.globals.get("calloc") or L.Function(
                lm, L.FunctionType(PTR, [i64, i64]), "calloc")
            block = bd.call(calloc, [nbytes, L.Constant(i64, 1)])
        else:
            malloc = lm.globals.get("malloc") or L.Function(lm, L.FunctionType(PTR, [i64]),
                                                             "malloc")
            block = bd.call(malloc, [nbytes])
        self.memory_error_if_null(block, "out of memory for an array")
        bd.store(bd.load(self.allocs), bd.bitcast(block, PTR.as_pointer()))
        bd.store(block, self.allocs)
        data = bd.bitcast(bd.gep(block, [L.Constant(i64, 16)], inbounds=True), elem.as_pointer())
        if fill is not None and fill != 0.0:
            value = L.Constant(elem, int(fill) if t.elem.is_int else fill)
            head, body, done = (self.new_block(s) for s in ("fill.head", "fill.body",
                                                              "fill.end"))
            pre = bd.block
            bd.branch(head)
            bd.position_at_end(head)
            k = bd.phi(i64)
            k.add_incoming(L.Constant(i64, 0), pre)
            bd.cbranch(bd.icmp_signed("<", k, count), body, done)
            bd.position_at_end(body)
            bd.store(value, bd.gep(data, [k], inbounds=True))
            k.add_incoming(bd.add(k, L.Constant(i64, 1)), body)
            bd.branch(head)
            bd.position_at_end(done)
        m = L.Constant(llvm_type(t), None)
        m = bd.insert_value(m, data, 0)
        stride = L.Constant(i64, 1)
        strides = [None] * t.rank
        for k in reversed(range(t.rank)):
            strides[k] = stride
            stride = bd.mul(stride, dims[k])
        for k in range(t.rank):
            m = bd.insert_value(m, dims[k], [1, k])
            m = bd.insert_value(m, strides[k], [2, k])
        return [m]

    def reserve(self, t, need, exact=False):
        """Make room for `need` bytes on tape `t` (`exact`: no more, for a tape still in its
        inline buffer, as a buffer tape is when made; else at least double its capacity);
        MemoryError when the heap says no."""
        bd = self.bd
        if self.ctx.target != "cpu":  # a GPU thread has its inline buffer only
            code = self.ctx.errors.code(
                "MemoryError", f"a reverse-mode tape outgrew the {TAPE_INLINE_BYTES} bytes a "
                "GPU thread has for it (a loop ran too long for reverse mode on the GPU)")
            self.fail(L.Constant(I32, code))
            bd.position_at_end(self.new_block("unreachable"))
            return
        fn = self.ctx.helper("lldiff.tape.reserve", _build_reserve)
        cap = L.Constant(L.IntType(64), 0) if exact else bd.load(t.cap)
        got = bd.call(fn, [bd.load(t.base), bd.load(t.size), cap, t.inline, need])
        base = bd.extract_value(got, 0)
        self.memory_error_if_null(base, "out of memory for the reverse-mode tape")
        bd.store(base, t.base)
        bd.store(bd.extract_value(got, 1), t.cap)

    def op_ad_tape(self, op):
        t = self.tapes[op.result]
        if op.operands:
            need = self.vals[op.operands[0]]
            grow, cont = self.new_block("tape_reserve"), self.new_block("tape_ready")
            # attribute heap: never the inline buffer, so the runtime's counters see it
            small = L.Constant(need.type, 0) if op.attrs.get("heap") else self.bd.load(t.cap)
            self.bd.cbranch(self.bd.icmp_unsigned(">", need, small), grow, cont)
            self.bd.position_at_end(grow)
            self.reserve(t, need, exact=True)  # a buffer: its size is known
            self.bd.branch(cont)
            self.bd.position_at_end(cont)
        return [t]

    def op_ad_count(self, op):
        self.bd.atomic_rmw("add", counter_ptr(self.bd, op.attrs["counter"]),
                           self.vals[op.operands[0]], "monotonic")
        return []

    def op_ad_tape_push(self, op):
        bd = self.bd
        t, v = (self.vals[x] for x in op.operands)
        size = bd.load(t.size)
        need = bd.add(size, L.Constant(size.type, _slot_bytes(op.operands[1].type)))
        if not op.operands[0].op.operands:  # a stack: grow when full (a buffer never is)
            grow, cont = self.new_block("tape_grow"), self.new_block("tape_push")
            bd.cbranch(bd.icmp_unsigned(">", need, bd.load(t.cap)), grow, cont)
            bd.position_at_end(grow)
            self.reserve(t, need)
            bd.branch(cont)
            bd.position_at_end(cont)
        base = bd.load(t.base)
        slot = bd.bitcast(bd.gep(base, [size], inbounds=True), v.type.as_pointer())
        bd.store(v, slot, align=t.align)
        bd.store(need, t.size)
        return []

    def op_ad_tape_pop(self, op):
        bd = self.bd
        t = self.vals[op.operands[0]]
        r = op.results[0]
        size = bd.sub(bd.load(t.size), L.Constant(L.IntType(64), _slot_bytes(r.type)))
        bd.store(size, t.size)
        base = bd.load(t.base)
        slot = bd.bitcast(bd.gep(base, [size], inbounds=True), llvm_type(r.type).as_pointer())
        return [bd.load(slot, align=t.align)]

    def op_ad_tape_free(self, op):
        self.free_tape(self.vals[op.operands[0]])
        return []

    def block(self, block):
        """Lower the ops of `block`; return the LLVM values of its terminator's operands."""
        self.sincos = _sincos_pairs(block) if self.ctx.target == "cpu" else {}
        for op in block.ops:
            n = op.name
            if n in ("scf.yield", "scf.condition"):
                return [self.vals[v] for v in op.operands]
            if n == "func.return":
                for v, out in zip(op.operands, self.outs):
                    self.bd.store(self.vals[v], out)
                for v in op.operands:  # a returned array now belongs to the caller
                    if v.type.is_memref:
                        fn = self.ctx.helper("lldiff.unlink", _build_unlink)
                        self.bd.call(fn, [self.allocs, self.array_block(self.vals[v])])
                self.free_arrays()
                self.bd.ret(L.Constant(I32, 0))
                return []
            handler = getattr(self, "op_" + n.replace(".", "_"), None)
            if op in self.sincos:
                results = self.sin_cos(op)
            elif handler is not None:
                results = handler(op)
            else:
                results = LOWER[n](self, op, [self.vals[v] for v in op.operands])
            for r, lv in zip(op.results, results):
                self.vals[r] = lv
        return []

    def new_block(self, name):
        return self.fn.append_basic_block(name)

    def sin_cos(self, op):
        """sin and cos of one value in one block: one llvm.sincos (libm's sincos, which shares
        the argument reduction) for both. Reverse mode makes such pairs: sin(x) recomputed
        next to its derivative cos(x)."""
        x = op.operands[0]
        key = (op.parent, x)
        got = self.sincos_done.get(key)
        if got is None:
            a = self.vals[x]
            pair = L.LiteralStructType([a.type, a.type])
            fn = self.ctx.intrinsic("llvm.sincos", [a.type], pair)
            both = self.bd.call(fn, [a])
            got = self.sincos_done[key] = (self.bd.extract_value(both, 0),
                                           self.bd.extract_value(both, 1))
        return [got[0] if op.name == "math.sin" else got[1]]

    def op_lldiff_raise_if(self, op):
        code = self.ctx.errors.code(op.attrs["exc"], op.attrs["msg"])
        fail, cont = self.new_block("raise"), self.new_block("ok")
        self.bd.cbranch(self.vals[op.operands[0]], fail, cont)
        self.bd.position_at_end(fail)
        self.fail(L.Constant(I32, code))
        self.bd.position_at_end(cont)
        return []

    def op_func_call(self, op):
        callee = self.ctx.funcs[op.attrs["callee"]]
        slots = [self.alloca_bd.alloca(llvm_type(r.type)) for r in op.results]
        status = self.bd.call(callee, [self.vals[v] for v in op.operands] + slots)
        fail, cont = self.new_block("call_failed"), self.new_block("call_ok")
        bad = self.bd.icmp_signed("!=", status, L.Constant(I32, 0))
        self.bd.cbranch(bad, fail, cont)
        self.bd.position_at_end(fail)
        self.fail(status)
        self.bd.position_at_end(cont)
        results = [self.bd.load(s) for s in slots]
        for r, v in zip(op.results, results):
            if r.type.is_memref:  # an array the callee returned joins this call's list
                block = self.array_block(v)
                self.bd.store(self.bd.load(self.allocs), self.bd.bitcast(block, PTR.as_pointer()))
                self.bd.store(block, self.allocs)
        return results

    def array_block(self, m):
        """The malloc'd block of an array made by lldiff.alloc: 16 bytes before its data."""
        data = self.bd.bitcast(self.bd.extract_value(m, 0), PTR)
        return self.bd.gep(data, [L.Constant(L.IntType(64), -16)])

    def op_scf_if(self, op):
        bd = self.bd
        then_b, else_b, merge = (self.new_block(s) for s in ("then", "else", "endif"))
        bd.cbranch(self.vals[op.operands[0]], then_b, else_b)
        sites = self.enter_construct(merge)
        incoming = []
        for region, start in zip(op.regions, (then_b, else_b)):
            bd.position_at_end(start)
            vals = self.block(region.block) if region.blocks else []
            incoming.append((vals, bd.block))
            bd.branch(merge)
        bd.position_at_end(merge)
        results = []
        for i, r in enumerate(op.results):
            phi = bd.phi(llvm_type(r.type), name=(r.hint or "").lstrip("."))
            for vals, blk in incoming:
                phi.add_incoming(vals[i], blk)
            _undef_from(phi, sites)
            results.append(phi)
        self.leave_construct(sites, [blk for _, blk in incoming])
        return results

    def op_scf_for(self, op):
        bd = self.bd
        lb, ub, step, *inits = (self.vals[v] for v in op.operands)
        body_blk = op.regions[0].block
        pre = bd.block
        head, body, done = (self.new_block(s) for s in ("for.head", "for.body", "for.end"))
        bd.branch(head)
        bd.position_at_end(head)
        iv = bd.phi(lb.type, name="iv")
        carried = [bd.phi(llvm_type(a.type), name=(a.hint or "").lstrip("."))
                   for a in body_blk.args[1:]]
        iv.add_incoming(lb, pre)
        for phi, v in zip(carried, inits):
            phi.add_incoming(v, pre)
        bd.cbranch(bd.icmp_signed("<", iv, ub), body, done)
        sites = self.enter_construct(done)
        bd.position_at_end(body)
        self.vals[body_blk.args[0]] = iv
        for a, phi in zip(body_blk.args[1:], carried):
            self.vals[a] = phi
        out = self.block(body_blk)
        nxt = bd.add(iv, step)
        latch = bd.block
        bd.branch(head)
        iv.add_incoming(nxt, latch)
        for phi, v in zip(carried, out):
            phi.add_incoming(v, latch)
        bd.position_at_end(done)
        self.leave_construct(sites, [head])  # (the head's phis dominate every error site)
        return carried

    def op_scf_while(self, op):
        bd = self.bd
        before, after = op.regions[0].block, op.regions[1].block
        pre = bd.block
        head, body, done = (self.new_block(s) for s in ("while.head", "while.body", "while.end"))
        bd.branch(head)
        sites = self.enter_construct(done)
        bd.position_at_end(head)
        phis = [bd.phi(llvm_type(a.type), name=(a.hint or "").lstrip(".")) for a in before.args]
        for phi, v in zip(phis, op.operands):
            phi.add_incoming(self.vals[v], pre)
        for a, phi in zip(before.args, phis):
            self.vals[a] = phi
        cond, *passed = self.block(before)
        exit_from = bd.block
        bd.cbranch(cond, body, done)
        bd.position_at_end(body)
        for a, v in zip(after.args, passed):
            self.vals[a] = v
        out = self.block(after)
        latch = bd.block
        bd.branch(head)
        for phi, v in zip(phis, out):
            phi.add_incoming(v, latch)
        bd.position_at_end(done)
        if sites:  # `passed` is made in the before region, after some error sites
            results = []
            for v in passed:
                phi = bd.phi(v.type)
                phi.add_incoming(v, exit_from)
                _undef_from(phi, sites)
                results.append(phi)
            passed = results
        self.leave_construct(sites, [exit_from])
        return passed
