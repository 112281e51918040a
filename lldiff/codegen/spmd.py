"""Lowers the SPMD form of a function (passes/spmd.py) to LLVM vector code, and the map
kernel that runs it over arrays W elements at a time.

Values of type `vector<WxT>` become LLVM `<W x T>`; arithmetic, comparisons, selects, casts
and LLVM's math intrinsics take vectors as they are (`llvm.sqrt.v8f64`: LLVM calls libm lane by
lane where the CPU has no instruction). The rest go lane by lane through the scalar lowering
(`LOWER`), so every lane computes exactly what the scalar code computes: libm calls without
an LLVM intrinsic, integer division (with inactive lanes' divisors made 1, never a trap),
integer and factorial lookups. `math.fpowi` with a uniform exponent is one vector loop of the
scalar square-and-multiply. `math.powf` on f64 lanes is vmath.py's pow, which computes every
lane in vector code and calls libm only for lanes whose rounding it cannot prove (where libm
is glibc's; elsewhere libm lane by lane).

Masks: `self.mask` is the `<W x i1>` of active lanes, or None when every lane is. Control flow
on a vector condition runs as passes/spmd.py describes; the reverse-mode tape keeps a stack
per lane, interleaved in memory (entry k of lane l at slot k * W + l, 8 bytes each), written
and read with masked scatter and gather; its bytes-used counter counts pushes of any lane,
an upper bound on every lane's stack that sizes the buffer (inline in the frame, then the
heap as in scalar code). A tape the lanes use together (`lanes = "together"`) is that layout
with every lane at the same entry: plain vector stores and loads, no per-lane counters.

The kernel (`emit_spmd_map`) has the scalar map kernel's ABI (kernel.py). It runs W
elements per call of the SPMD function while W remain, then the scalar map for the tail. When
the SPMD function fails (an exception in some lane), the scalar map reruns those W elements,
so the error raised and the element reported are exactly the scalar loop's. Arguments read
with stride 0 must be the ones the SPMD form was made uniform for; any other argument and
every result must have stride 1, else the whole range goes to the scalar map.

Must not import llvmlite.binding or know about derivatives.
"""

from llvmlite import ir as L

from ..ir import I1
from .kernel import _memory_type, emit_map
from .llvm import (I32, LOWER, PTR, TAPE_INLINE_BYTES, _build_powi, _FuncEmitter, _Tape,
                   const_of, llvm_type, mangle, splat)
from .vmath import build_vpow

__all__ = ["LaneEmitter", "emit_spmd_map", "simd_name", "VECTOR_MATH"]

_I64 = L.IntType(64)
# Ops lowered lane by lane through their scalar lowering when an operand is a vector.
_LANEWISE = {"math.tan", "math.asin", "math.acos", "math.atan", "math.atan2", "math.sinh",
             "math.cosh", "math.tanh", "math.asinh", "math.acosh", "math.atanh", "math.expm1",
             "math.log1p", "math.cbrt", "math.erf", "math.erfc", "lldiff.hypot",
             "lldiff.lgamma", "lldiff.tgamma", "math.ipowi", "lldiff.factorial",
             "arith.floordivsi", "arith.remsi"}
# Ops with a libmvec function (the libm name); with fastmath=True the SPMD form calls it.
VECTOR_MATH = {
    "math.sin": "sin", "math.cos": "cos", "math.tan": "tan", "math.asin": "asin",
    "math.acos": "acos", "math.atan": "atan", "math.sinh": "sinh", "math.cosh": "cosh",
    "math.tanh": "tanh", "math.asinh": "asinh", "math.acosh": "acosh", "math.atanh": "atanh",
    "math.exp": "exp", "math.exp2": "exp2", "math.expm1": "expm1", "math.log": "log",
    "math.log2": "log2", "math.log10": "log10", "math.log1p": "log1p", "math.cbrt": "cbrt",
    "math.erf": "erf", "math.erfc": "erfc", "math.powf": "pow", "math.atan2": "atan2",
    "lldiff.hypot": "hypot"}
# ... of which these read their last operand as a divisor (made 1 in inactive lanes;
# lldiff.factorial's index is made 0 there):
_DIVISORS = {"arith.floordivsi", "arith.remsi"}


def simd_name(symbol):
    return f"{symbol}.simd"


class _LaneTape(_Tape):
    __slots__ = ("sizes",)


class LaneEmitter(_FuncEmitter):
    """_FuncEmitter for a function in SPMD form (f.attrs["spmd"])."""

    def emit(self):
        self.lanes = self.f.attrs["spmd"]["lanes"]
        self.mask = None
        self.fn.attributes.add("alwaysinline")  # into the kernel's loop: loads meet the math
        super().emit()

    # --- masks ----------------------------------------------------------------------------

    def mask_type(self):
        return L.VectorType(L.IntType(1), self.lanes)

    def all_lanes(self):
        return const_of(self.mask_type(), 1)

    def declare(self, name, ret, args):
        return self.ctx.helper(name, lambda lm, n: L.Function(lm, L.FunctionType(ret, args),
                                                              name=n))

    def any(self, m):
        fn = self.ctx.intrinsic("llvm.vector.reduce.or", [m.type], L.IntType(1))
        return self.bd.call(fn, [m])

    def both(self, a, b):
        return b if a is None else self.bd.and_(a, b)

    def lanes_of(self, v):
        """`v` as a vector (a scalar broadcast)."""
        return v if isinstance(v.type, L.VectorType) else splat(self.bd, v, self.lanes)

    def zero(self, t):
        return L.Constant(t, None)

    # --- ops ------------------------------------------------------------------------------

    def lanewise(self, op):
        a = [self.vals[v] for v in op.operands]
        if not any(isinstance(x.type, L.VectorType) for x in a):
            return LOWER[op.name](self, op, a)
        bd = self.bd
        if op.name in _DIVISORS and self.mask is not None:
            divisor = self.lanes_of(a[-1])
            a[-1] = bd.select(self.mask, divisor, const_of(divisor.type, 1))
        if op.name == "lldiff.factorial" and self.mask is not None:
            a[0] = bd.select(self.mask, a[0], self.zero(a[0].type))
        out = self.zero(llvm_type(op.results[0].type))
        for k in range(self.lanes):
            lane = L.Constant(I32, k)
            scalars = [bd.extract_element(x, lane) if isinstance(x.type, L.VectorType) else x
                       for x in a]
            (r,) = LOWER[op.name](self, op, scalars)
            out = bd.insert_element(out, r, lane)
        return [out]

    def vector_math(self, op, lanewise):
        """`op` on f64 lanes by glibc's vector math library when the function allows it
        (fastmath=True and libmvec has the function: `_ZGVeN8v_sin` and kin, up to 4 ulp
        from libm, glibc's documented bound), else as the scalar code computes it."""
        a = [self.vals[v] for v in op.operands]
        vm = self.ctx.vector_math
        name = VECTOR_MATH[op.name]
        if not (self.ctx.fastmath and vm is not None and name in vm[2] and
                any(isinstance(x.type, L.VectorType) for x in a) and
                a[0].type.element == L.DoubleType() and self.lanes % vm[0] == 0):
            return self.lanewise(op) if lanewise else LOWER[op.name](self, op, a)
        lanes, letter = vm[0], vm[1]
        a = [self.lanes_of(x) for x in a]
        vt = L.VectorType(L.DoubleType(), lanes)
        fn = self.declare(f"_ZGV{letter}N{lanes}{'v' * len(a)}_{name}", vt, [vt] * len(a))
        bd, parts = self.bd, []
        for k in range(0, self.lanes, lanes):  # W lanes as W / lanes calls
            idx = L.Constant(L.VectorType(I32, lanes), list(range(k, k + lanes)))
            args = a if lanes == self.lanes else [bd.shuffle_vector(x, x, idx) for x in a]
            parts.append(bd.call(fn, args))
        while len(parts) > 1:  # concatenate pairwise
            n = parts[0].type.count
            idx = L.Constant(L.VectorType(I32, 2 * n), list(range(2 * n)))
            parts = [bd.shuffle_vector(parts[i], parts[i + 1], idx)
                     for i in range(0, len(parts), 2)]
        return [parts[0]]

    def sin_cos(self, op):
        vm = self.ctx.vector_math
        if self.ctx.fastmath and vm is not None and isinstance(
                self.vals[op.operands[0]].type, L.VectorType):
            return self.vector_math(op, False)  # libmvec's sin and cos, not sincos pairs
        return super().sin_cos(op)

    def op_math_powf(self, op):
        """f64 lanes: vmath.py's pow, bit-equal to libm's lane by lane where libm is glibc's
        (`ctx.vector_pow`; libmvec's with fastmath=True). Not with a constant operand: there
        the scalar code is not libm's pow -- LLVM rewrites pow(x, 0.5) as fabs(sqrt(x)),
        pow(x, 2.0) as x * x, ... -- and `llvm.pow` on vectors gets the same rewrites."""
        a = [self.vals[v] for v in op.operands]
        vectors = [x.type for x in a if isinstance(x.type, L.VectorType)]
        if self.ctx.fastmath or not self.ctx.vector_pow or not vectors or \
                vectors[0].element != L.DoubleType() or any(isinstance(x, L.Constant) for x in a):
            return self.vector_math(op, False)
        w = self.lanes
        fn = self.ctx.helper(f"lldiff.vpow.v{w}f64", lambda lm, name: build_vpow(lm, name, w))
        return [self.bd.call(fn, [self.lanes_of(x) for x in a] +
                             [self.mask or self.all_lanes()])]

    def op_math_fpowi(self, op):
        x, n = (self.vals[v] for v in op.operands)
        if isinstance(n.type, L.VectorType):
            return self.lanewise(op)
        if not isinstance(x.type, L.VectorType):
            return LOWER[op.name](self, op, [x, n])
        fn = self.ctx.helper(f"lldiff.powi.{mangle(x.type)}",
                             lambda lm, name: _build_powi(lm, name, x.type))
        return [self.bd.call(fn, [x, n])]

    def op_lldiff_max_lanes(self, op):
        n = self.vals[op.operands[0]]
        if not isinstance(n.type, L.VectorType):
            return [n]
        if self.mask is not None:
            n = self.bd.select(self.mask, n, const_of(n.type, -(1 << 63)))
        fn = self.ctx.intrinsic("llvm.vector.reduce.smax", [n.type], n.type.element)
        return [self.bd.call(fn, [n])]

    def op_lldiff_raise_if(self, op):
        c = self.vals[op.operands[0]]
        bd = self.bd
        if isinstance(c.type, L.VectorType):
            fail = self.any(self.both(self.mask, c))
        else:
            fail = c if self.mask is None else bd.and_(c, self.any(self.mask))
        code = self.ctx.errors.code(op.attrs["exc"], op.attrs["msg"])
        bad, cont = self.new_block("raise"), self.new_block("ok")
        bd.cbranch(fail, bad, cont)
        bd.position_at_end(bad)
        self.ret_status(L.Constant(I32, code))
        bd.position_at_end(cont)
        return []

    # --- control flow ---------------------------------------------------------------------

    def op_scf_if(self, op):
        c = self.vals[op.operands[0]]
        if not isinstance(c.type, L.VectorType):
            return super().op_scf_if(op)
        outer, bd = self.mask, self.bd
        not_c = bd.xor(c, self.all_lanes())
        sides = [self.masked_region(region, self.both(outer, m), op.results)
                 for region, m in zip(op.regions, (c, not_c))]
        self.mask = outer
        return [bd.select(c, t, e) for t, e in zip(*sides)]

    def masked_region(self, region, m, results):
        """Run `region` for the lanes of mask `m`, skipped when there are none; its yielded
        values (zeros where it was skipped)."""
        if not region.blocks:
            return []
        bd = self.bd
        start = bd.block
        run, join = self.new_block("lanes"), self.new_block("lanes.end")
        bd.cbranch(self.any(m), run, join)
        bd.position_at_end(run)
        self.mask = m
        vals = self.block(region.block)
        end = bd.block
        bd.branch(join)
        bd.position_at_end(join)
        out = []
        for r, v in zip(results, vals):
            phi = bd.phi(llvm_type(r.type))
            phi.add_incoming(self.lanes_of(v) if r.type.is_vector else v, end)
            phi.add_incoming(self.zero(llvm_type(r.type)), start)
            out.append(phi)
        return out

    def op_scf_while(self, op):
        before, after = op.regions[0].block, op.regions[1].block
        if not before.terminator.operands[0].type.is_vector:
            return super().op_scf_while(op)  # every lane leaves together
        outer, bd = self.mask, self.bd
        pre = bd.block
        head, body, done = (self.new_block(s) for s in ("while.head", "while.body",
                                                          "while.end"))
        bd.branch(head)
        bd.position_at_end(head)
        phis = [bd.phi(llvm_type(a.type), name=(a.hint or "").lstrip(".")) for a in before.args]
        for phi, v in zip(phis, op.operands):
            phi.add_incoming(self.vals[v], pre)
        active = bd.phi(self.mask_type(), name="active")
        active.add_incoming(outer if outer is not None else self.all_lanes(), pre)
        kept = [bd.phi(llvm_type(r.type)) for r in op.results]  # lanes' values when they left
        for phi in kept:
            phi.add_incoming(self.zero(phi.type), pre)
        for a, phi in zip(before.args, phis):
            self.vals[a] = phi
        self.mask = active
        cond, *passed = self.block(before)
        stay = bd.and_(active, cond)
        leaving = bd.and_(active, bd.xor(cond, self.all_lanes()))
        results = [bd.select(leaving, self.lanes_of(p), k) for p, k in zip(passed, kept)]
        bd.cbranch(self.any(stay), body, done)
        bd.position_at_end(body)
        self.mask = stay
        for a, v in zip(after.args, passed):
            self.vals[a] = v
        out = self.block(after)
        latch = bd.block
        bd.branch(head)
        for phi, v in zip(phis, out):
            phi.add_incoming(v, latch)
        active.add_incoming(stay, latch)
        for phi, v in zip(kept, results):
            phi.add_incoming(v, latch)
        bd.position_at_end(done)
        self.mask = outer
        return results

    def op_scf_for(self, op):
        lb, ub, step, *inits = (self.vals[v] for v in op.operands)
        if not any(isinstance(x.type, L.VectorType) for x in (lb, ub, step)):
            return super().op_scf_for(op)
        outer, bd = self.mask, self.bd
        body_blk = op.regions[0].block
        pre = bd.block
        head, body, done = (self.new_block(s) for s in ("for.head", "for.body", "for.end"))
        bd.branch(head)
        bd.position_at_end(head)
        iv = bd.phi(llvm_type(body_blk.args[0].type), name="iv")
        iv.add_incoming(lb, pre)
        carried = [bd.phi(llvm_type(a.type), name=(a.hint or "").lstrip("."))
                   for a in body_blk.args[1:]]
        for phi, v in zip(carried, inits):
            phi.add_incoming(v, pre)
        active = bd.phi(self.mask_type(), name="active")
        active.add_incoming(outer if outer is not None else self.all_lanes(), pre)
        cont = bd.and_(active, bd.icmp_signed("<", self.lanes_of(iv), self.lanes_of(ub)))
        bd.cbranch(self.any(cont), body, done)
        bd.position_at_end(body)
        self.mask = cont
        self.vals[body_blk.args[0]] = iv
        for a, phi in zip(body_blk.args[1:], carried):
            self.vals[a] = phi
        out = self.block(body_blk)
        step = self.lanes_of(step) if isinstance(iv.type, L.VectorType) else step
        nxt = bd.add(iv, step)
        out = [bd.select(cont, v, phi) if isinstance(phi.type, L.VectorType) else v
               for phi, v in zip(carried, out)]  # finished lanes keep their values
        latch = bd.block
        bd.branch(head)
        iv.add_incoming(nxt, latch)
        for phi, v in zip(carried, out):
            phi.add_incoming(v, latch)
        active.add_incoming(cont, latch)
        bd.position_at_end(done)
        self.mask = outer
        return carried

    # --- the tape: a stack per lane -------------------------------------------------------

    def new_tape(self):
        bd = self.alloca_bd
        inline_bytes = max(TAPE_INLINE_BYTES, 128 * 8 * self.lanes)  # 128 entries per lane
        buf = bd.alloca(L.ArrayType(L.IntType(8), inline_bytes), name="tape.inline")
        buf.align = 64
        inline = bd.bitcast(buf, PTR)
        t = _LaneTape(bd.alloca(PTR, name="tape.base"), bd.alloca(_I64, name="tape.size"),
                      bd.alloca(_I64, name="tape.cap"), inline)
        t.sizes = bd.alloca(L.VectorType(_I64, self.lanes), name="tape.lanes")
        bd.store(inline, t.base)
        bd.store(L.Constant(_I64, 0), t.size)
        bd.store(L.Constant(_I64, inline_bytes), t.cap)
        bd.store(self.zero(t.sizes.type.pointee), t.sizes)
        return t

    def op_ad_tape(self, op):
        return [self.tapes[op.result]]  # a reserved size is the scalar code's; lanes grow

    def slots(self, t, sizes):
        """<W x ptr> of each lane's entry `sizes[lane]` of tape `t`."""
        bd, w = self.bd, self.lanes
        base = splat(bd, bd.ptrtoint(bd.load(t.base), _I64), w)
        lane = L.Constant(sizes.type, list(range(w)))
        off = bd.mul(bd.add(bd.mul(sizes, const_of(sizes.type, w)), lane),
                     const_of(sizes.type, 8))
        return bd.inttoptr(bd.add(base, off), L.VectorType(PTR, w))

    def step(self):
        m = self.mask
        vt = L.VectorType(_I64, self.lanes)
        return const_of(vt, 1) if m is None else self.bd.zext(m, vt)

    def op_ad_tape_push(self, op):
        bd = self.bd
        t, v = (self.vals[x] for x in op.operands)
        size = bd.load(t.size)
        need = bd.add(size, L.Constant(_I64, 8 * self.lanes))
        grow, cont = self.new_block("tape_grow"), self.new_block("tape_push")
        bd.cbranch(bd.icmp_unsigned(">", need, bd.load(t.cap)), grow, cont)
        bd.position_at_end(grow)
        self.reserve(t, need)
        bd.branch(cont)
        bd.position_at_end(cont)
        if v.type.element == L.IntType(1):
            v = bd.zext(v, L.VectorType(L.IntType(8), self.lanes))
        if _together(op):  # every lane has the same entries: entry k at slots k*W..k*W+W-1
            slot = bd.bitcast(bd.gep(bd.load(t.base), [size], inbounds=True),
                              v.type.as_pointer())
            bd.store(v, slot, align=8)
            bd.store(need, t.size)
            return []
        sizes = bd.load(t.sizes)
        fn = self.declare(f"llvm.masked.scatter.{mangle(v.type)}.v{self.lanes}p0",
                          L.VoidType(), [v.type, L.VectorType(PTR, self.lanes),
                                         self.mask_type()])
        bd.call(fn, [v, self.slots(t, sizes), self.mask or self.all_lanes()])
        bd.store(bd.add(sizes, self.step()), t.sizes)
        bd.store(need, t.size)
        return []

    def op_ad_tape_pop(self, op):
        bd = self.bd
        t = self.vals[op.operands[0]]
        rt = llvm_type(op.results[0].type)
        mt = L.VectorType(L.IntType(8), self.lanes) if rt.element == L.IntType(1) else rt
        if _together(op):
            size = bd.sub(bd.load(t.size), L.Constant(_I64, 8 * self.lanes))
            bd.store(size, t.size)
            slot = bd.bitcast(bd.gep(bd.load(t.base), [size], inbounds=True), mt.as_pointer())
            v = bd.load(slot, align=8)
            return [bd.trunc(v, rt) if mt is not rt else v]
        sizes = bd.sub(bd.load(t.sizes), self.step())
        bd.store(sizes, t.sizes)
        fn = self.declare(f"llvm.masked.gather.{mangle(mt)}.v{self.lanes}p0", mt,
                          [L.VectorType(PTR, self.lanes), self.mask_type(), mt])
        v = bd.call(fn, [self.slots(t, sizes), self.mask or self.all_lanes(), self.zero(mt)])
        return [bd.trunc(v, rt) if mt is not rt else v]

    def op_ad_tape_free(self, op):
        t = self.vals[op.operands[0]]
        self.free_tape(t)
        self.bd.store(L.Constant(_I64, 0), t.size)
        self.bd.store(self.zero(t.sizes.type.pointee), t.sizes)
        return []


def _together(op):
    """Whether tape op `op` uses a tape all lanes use together (passes/spmd.py)."""
    return op.operands[0].op.attrs.get("lanes") == "together"


for _name in _LANEWISE:
    setattr(LaneEmitter, "op_" + _name.replace(".", "_"), lambda self, op: self.lanewise(op))
for _name in VECTOR_MATH:
    if _name != "math.powf":  # (its own method above)
        setattr(LaneEmitter, "op_" + _name.replace(".", "_"),
                lambda self, op, lanewise=_name in _LANEWISE: self.vector_math(op, lanewise))


def emit_spmd_map(lm, func, lanes_func):
    """`i32 @<func>.simd(...)` (kernel.py's map ABI) running `lanes_func`, the SPMD form of
    `func`, W elements at a time; emits the scalar map of `func` too (tails, failures)."""
    scalar = emit_map(lm, func)
    native = lm.globals[lanes_func.name]
    uniform = lanes_func.attrs["spmd"]["uniform"]
    w = lanes_func.attrs["spmd"]["lanes"]
    fn = L.Function(lm, scalar.function_type, name=simd_name(func.name))
    start, end, ins, in_strides, outs, out_strides, failed = fn.args
    entry, prep, head, body, ok, redo, redo_ok, tail, whole, give_up = (
        fn.append_basic_block(s) for s in ("entry", "prep", "head", "body", "ok", "redo",
                                           "redo.ok", "tail", "whole", "give_up"))
    bd = L.IRBuilder(entry)

    def typed_base(table, idx, t):
        p = bd.load(bd.gep(table, [L.Constant(_I64, idx)]))
        return bd.bitcast(p, _memory_type(t).as_pointer())

    def entry_ok(step, want):
        return bd.icmp_signed("==", step, L.Constant(_I64, want))

    in_bases = [typed_base(ins, j, a.type) for j, a in enumerate(func.args)]
    out_bases = [typed_base(outs, j, t) for j, t in enumerate(func.result_types)]
    fits = L.Constant(L.IntType(1), 1)
    for j in range(len(func.args)):
        step = bd.load(bd.gep(in_strides, [L.Constant(_I64, j)]))
        fits = bd.and_(fits, entry_ok(step, 0 if uniform[j] else 1))
    for j in range(len(func.result_types)):
        step = bd.load(bd.gep(out_strides, [L.Constant(_I64, j)]))
        fits = bd.and_(fits, entry_ok(step, 1))
    slots = [bd.alloca(llvm_type(t)) for t in lanes_func.result_types]
    bd.cbranch(bd.and_(fits, bd.icmp_signed("<", start, end)), prep, whole)

    bd.position_at_end(whole)  # strides this form was not made for (or no elements)
    bd.ret(bd.call(scalar, fn.args))

    bd.position_at_end(prep)  # uniform arguments are read once, before the loop, so LLVM
    uniform_vals = {}
    for j, (a, base) in enumerate(zip(func.args, in_bases)):  # may hoist what they alone feed
        if uniform[j]:
            v = bd.load(base)
            uniform_vals[j] = bd.trunc(v, L.IntType(1)) if a.type is I1 else v
    bd.branch(head)

    bd.position_at_end(head)
    i = bd.phi(_I64, name="i")
    i.add_incoming(start, prep)
    nxt = bd.add(i, L.Constant(_I64, w))
    bd.cbranch(bd.icmp_signed("<=", nxt, end), body, tail)

    bd.position_at_end(body)
    args = []
    for j, (a, base) in enumerate(zip(func.args, in_bases)):
        if j in uniform_vals:
            args.append(uniform_vals[j])
            continue
        mt = L.VectorType(_memory_type(a.type), w)
        v = bd.load(bd.bitcast(bd.gep(base, [i]), mt.as_pointer()), align=_align(a.type))
        args.append(bd.trunc(v, L.VectorType(L.IntType(1), w)) if a.type is I1 else v)
    status = bd.call(native, args + slots)
    bd.cbranch(bd.icmp_signed("!=", status, L.Constant(I32, 0)), redo, ok)

    bd.position_at_end(ok)
    for t, base, slot in zip(func.result_types, out_bases, slots):
        v = bd.load(slot)
        if t is I1:
            v = bd.zext(v, L.VectorType(L.IntType(8), w))
        bd.store(v, bd.bitcast(bd.gep(base, [i]), v.type.as_pointer()), align=_align(t))
    bd.branch(head)
    i.add_incoming(nxt, ok)

    bd.position_at_end(redo)  # some lane failed: the scalar loop finds which, and why
    got = bd.call(scalar, [i, nxt, ins, in_strides, outs, out_strides, failed])
    bd.cbranch(bd.icmp_signed("!=", got, L.Constant(I32, 0)), give_up, redo_ok)
    bd.position_at_end(give_up)
    bd.ret(got)
    bd.position_at_end(redo_ok)
    bd.branch(head)
    i.add_incoming(nxt, redo_ok)

    bd.position_at_end(tail)
    bd.ret(bd.call(scalar, [i, end, ins, in_strides, outs, out_strides, failed]))
    return fn


def _align(t):
    return 1 if t is I1 else t.width // 8

