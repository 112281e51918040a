"""SPMD: a scalar function's IR in W-lane form, for evaluating W points at once in SIMD lanes.

`spmd_func(module, name, uniform, lanes)` returns a new function (`<name>.spmd<W>`) that
computes what `name` computes, for W sets of arguments at once. It works on any scalar
function this compiler makes -- a primal, a jvp, a vjp with its materialized tapes -- after
differentiation, so the derivative passes never see lanes.

Uniformity. An argument flagged in `uniform` is the same in every lane (a number broadcast
over the batch, like `v` in the Bessel series); so is every constant and every value computed
only from uniform values. Those stay scalars: computed once, not W times. The others are
*varying* and get type `vector<WxT>`. Where a uniform value meets a varying one, an explicit
`vector.broadcast` puts it in every lane (MLIR's vector dialect), except where a scalar operand
is what the op wants (the exponent of `math.fpowi`, a `select` condition, loop bounds, the
condition of `scf.if`/`scf.while`).

Control flow on a varying condition becomes masked execution, as in ISPC or Dr.Jit; the
printed IR keeps the scf ops and codegen/spmd.py gives them these meanings:

- `scf.if` on `vector<Wxi1>`: each side runs for the lanes that take it (and is skipped when
  none does); the results are selected per lane.
- `scf.while` whose `scf.condition` is `vector<Wxi1>`: the loop runs until no lane continues;
  a finished lane takes no further part, and each lane's results are its values when it left.
  Values carried with the same value in every active lane (the counter `k` of a series whose
  lanes all started together) stay scalar inside the loop; the results are vectors.
- `scf.for` with a varying bound or step: per-lane trip counts, run to the largest with the
  finished lanes masked off; its carried values are vectors.
- Effects act only in active lanes: `lldiff.raise_if` fails if an active lane's condition
  holds; `ad.tape.push` / `ad.tape.pop` use a stack per lane (each lane's entries in its own
  order, so a reverse sweep whose trip count differs per lane pops each lane's own values).
  A tape whose pushes and pops are all outside such control flow gets `lanes = "together"`:
  every lane has the same entries, so it is one stack of W-lane entries.

A reverse sweep whose trip count differs per lane runs its lanes aligned at their last
iteration (`_align_reverse_loops`), so the forward iteration it undoes is uniform.

Inactive lanes may hold any value (they are never stored or observed); codegen keeps the ops
that could trap on such values (integer division, table lookups) safe.

What has no SPMD form raises `NotSpmd` with the reason, and the caller uses the scalar loop:
arrays (memref values, allocation), calls left after inlining (a custom rule's), and ops of
checkpointing's counters (`ad.count`). IR -> IR only; the module is not modified.
"""

from lldiff.ir import I1, I64, Block, Func, Op, Region, vector

from .inline import inline_calls
from .rewrite import clone_op, constant_op, substitute

__all__ = ["spmd_func", "spmd_name", "NotSpmd", "varying_values"]

# Ops whose listed operand positions stay scalar when uniform, next to varying operands.
_SCALAR_OK = {"math.fpowi": (1,), "arith.select": (0,)}
_UNSUPPORTED = {"lldiff.alloc", "lldiff.load", "lldiff.store", "lldiff.dim", "func.call",
                "ad.count", "ad.push", "ad.pop"}


class NotSpmd(Exception):
    """The function has no SPMD form; str() says why."""


def spmd_name(name, lanes):
    return f"{name}.spmd{lanes}"


def spmd_func(module, name, uniform, lanes):
    """The W-lane form (W = `lanes`) of function `name` of `module`, whose arguments flagged
    in `uniform` are the same in every lane; NotSpmd when it has none."""
    func = inline_calls(module, module[name])
    _check(func)
    uniform = tuple(bool(u) for u in uniform)
    if len(uniform) != len(func.args):
        raise ValueError(f"uniform has {len(uniform)} flags for {len(func.args)} arguments")
    varying_args = [not u for u in uniform]
    _align_reverse_loops(func, varying_values(func, varying_args))
    varying = varying_values(func, varying_args)  # (aligned reverse indices are uniform)
    return _Builder(func, varying, lanes).build(spmd_name(name, lanes), uniform)


def _check(func):
    for a in func.args:
        if a.type.is_memref:
            raise NotSpmd(f"argument {a.hint or a.index} is an array")
    for op in func.walk():
        if op.name in _UNSUPPORTED:
            why = {"func.call": "calls a function with a custom derivative rule",
                   "ad.count": "is checkpointed"}.get(op.name, "uses arrays")
            raise NotSpmd(f"{func.name} {why} ({op.name})")
        if any(r.type.is_memref for r in op.results):
            raise NotSpmd(f"{func.name} uses arrays ({op.name})")


# --- reverse sweeps aligned at their end ------------------------------------------------

def _align_reverse_loops(func, varying):
    """Run reverse sweeps with per-lane trip counts aligned at their *end*; True if any was.

    A reverse sweep is `scf.for %j = 0 to %n step 1` with `%t = (%n - c) - %j`, the index of
    the forward iteration it undoes (passes/vjp.py). With %n differing per lane, lanes
    running from j = 0 together would be at different t, so everything recomputed from t
    would be a vector. Starting lane l late, at j = N - n_l (N the largest n of the active
    lanes), makes every active lane undo iteration t = (N - c) - j at the same time: t and
    what depends only on it and uniform values stay scalar, as the forward loop's counter
    does. Each lane still runs its own iterations in its own order. Rewritten (scalar IR,
    where max_lanes(n) = n and so shift = 0):

        %N = lldiff.max_lanes(%n);  %shift = %N - %n
        scf.for %jj = 0 to %N step 1 iter_args(%a = ...) {
          %on = %jj - %shift >= 0
          %r = scf.if %on { body with %j = %jj - %shift and %t = (%N - c) - %jj } else { %a }
          scf.yield %r
        }
    """
    replaced = {}
    loops = [op for op in func.walk() if op.name == "scf.for"]
    for op in reversed(loops):  # inner loops first: an outer one then copies them aligned
        new_ops = _aligned(op, varying)
        if new_ops is None:
            continue
        block = op.parent
        k = block.ops.index(op)
        block.ops[k:k + 1] = new_ops
        for o in new_ops:
            o.parent = block
        replaced.update(zip(op.results, new_ops[-1].results))
    substitute(func, replaced)
    return bool(replaced)


def _const(v, value):
    c = constant_op(v)
    return c is not None and c.attrs["value"] == value


def _aligned(op, varying):
    """The ops replacing reverse sweep `op` aligned at its end, or None when it is not one."""
    lb, ub, step, *inits = op.operands
    body = op.regions[0].block
    iv = body.args[0]
    if not (ub in varying and _const(lb, 0) and _const(step, 1)):
        return None
    reverse = {}  # %t ops -> c
    for inner in body.ops:
        if inner.name == "arith.subi" and inner.operands[1] is iv:
            a = inner.operands[0]
            if getattr(a, "op", None) is not None and a.op.name == "arith.subi" and \
                    a.op.operands[0] is ub and a.op.operands[1] not in varying:
                reverse[inner] = a.op.operands[1]
    if not reverse:
        return None
    pre = []

    def emit(name, operands, attrs=None, into=pre):
        o = Op(name, operands, [I64], attrs or {}, loc=op.loc)
        into.append(o)
        return o.result

    n_max = emit("lldiff.max_lanes", [ub])
    shift = emit("arith.subi", [n_max, ub])
    ends = {c: emit("arith.subi", [n_max, c]) for c in set(reverse.values())}
    carried_types = [a.type for a in body.args[1:]]
    new_body = Block([I64] + carried_types, [iv.hint] + [a.hint for a in body.args[1:]])
    jj, carried = new_body.args[0], new_body.args[1:]
    head = []
    own = emit("arith.subi", [jj, shift], into=head)
    zero = Op("arith.constant", [], [I64], {"value": 0, "type": I64})
    head.insert(0, zero)
    on = Op("arith.cmpi", [own, zero.result], [I1], {"pred": "sge"}, loc=op.loc)
    head.append(on)
    vmap = {iv: own}
    vmap.update(zip(body.args[1:], carried))
    then_b = Block()
    for inner in body.ops:
        if inner in reverse:
            vmap[inner.result] = emit("arith.subi", [ends[reverse[inner]], jj], into=head)
            continue
        then_b.append(clone_op(inner, vmap))
    else_b = Block()
    else_b.append(Op("scf.yield", list(carried), []))
    branch = Op("scf.if", [on.result], carried_types, {}, [Region([then_b]), Region([else_b])],
                loc=op.loc)
    for o in head + [branch]:
        new_body.append(o)
    new_body.append(Op("scf.yield", list(branch.results), []))
    new = Op("scf.for", [lb, n_max, step] + list(inits), [r.type for r in op.results],
             dict(op.attrs), [Region([new_body])], loc=op.loc)
    for r, nr in zip(op.results, new.results):
        nr.hint = r.hint
    return pre + [new]


# --- uniformity ---------------------------------------------------------------------------

def varying_values(func, varying_args):
    """The set of values of `func` that differ between lanes, given which arguments do."""
    varying = {a for a, v in zip(func.args, varying_args) if v}
    while True:  # loops carry values around: grow the set to a fixed point
        before = len(varying)
        _visit(func.body.block, varying)
        if len(varying) == before:
            return varying


def _visit(block, varying):
    for op in block.ops:
        n = op.name
        if n == "scf.if":
            for region in op.regions:
                if region.blocks:
                    _visit(region.block, varying)
            if op.operands[0] in varying:
                varying.update(op.results)
            else:
                for i, r in enumerate(op.results):
                    if any(region.blocks and region.block.terminator.operands[i] in varying
                           for region in op.regions):
                        varying.add(r)
        elif n == "scf.for":
            body = op.regions[0].block
            lb, ub, step, *inits = op.operands
            divergent = any(v in varying for v in (lb, ub, step))
            if lb in varying or step in varying:
                varying.add(body.args[0])
            for a, init in zip(body.args[1:], inits):
                if divergent or init in varying:
                    varying.add(a)
            _visit(body, varying)
            for a, r, y in zip(body.args[1:], op.results, body.terminator.operands):
                if y in varying:
                    varying.add(a)
                if a in varying:
                    varying.add(r)
        elif n == "scf.while":
            before, after = op.regions[0].block, op.regions[1].block
            for a, init in zip(before.args, op.operands):
                if init in varying:
                    varying.add(a)
            _visit(before, varying)
            cond, *passed = before.terminator.operands
            for a, p in zip(after.args, passed):
                if p in varying:
                    varying.add(a)
            _visit(after, varying)
            for a, y in zip(before.args, after.terminator.operands):
                if y in varying:
                    varying.add(a)
            for r, p in zip(op.results, passed):
                if cond in varying or p in varying:
                    varying.add(r)
        elif n == "ad.tape.pop":
            varying.update(op.results)  # each lane's own stack
        elif n == "lldiff.max_lanes":
            pass  # the same in every lane
        elif any(v in varying for v in op.operands):
            varying.update(op.results)


# --- the W-lane function ------------------------------------------------------------------

class _Builder:
    def __init__(self, func, varying, lanes):
        self.func, self.varying, self.lanes = func, varying, lanes
        self.vmap = {}
        self.masked = 0  # how deep in control flow on a varying condition the op being built is
        self.masked_tapes = set()  # tapes used there

    def type(self, v):
        return vector(v.type, self.lanes) if v in self.varying else v.type

    def build(self, name, uniform):
        f = self.func
        new = Func(name, [self.type(a) for a in f.args],
                   [vector(t, self.lanes) for t in f.result_types], f.arg_names, loc=f.loc)
        new.attrs["spmd"] = {"lanes": self.lanes, "uniform": uniform}
        self.vmap.update(zip(f.args, new.args))
        self.block(f.body.block, new.body.block)
        for op in new.walk():  # a tape only ever used by all lanes together: one stack
            if op.name == "ad.tape" and op.attrs["tape"] not in self.masked_tapes:
                op.attrs["lanes"] = "together"
        return new

    def regions_of(self, masked, build):
        self.masked += masked
        try:
            return build()
        finally:
            self.masked -= masked

    def block(self, src, dst):
        for op in src.ops:
            self.op(op, dst)

    def vec(self, v, dst):
        """`v` (mapped) as a vector: itself when varying, else broadcast into `dst`."""
        nv = self.vmap[v] if v in self.vmap else v
        if nv.type.is_vector:
            return nv
        op = Op("vector.broadcast", [nv], [vector(nv.type, self.lanes)],
                {"to": vector(nv.type, self.lanes)}, loc=None)
        dst.append(op)
        return op.result

    def same(self, v):
        return self.vmap.get(v, v)

    def as_type(self, v, want_vector, dst):
        return self.vec(v, dst) if want_vector else self.same(v)

    def region_block(self, src, arg_types):
        nb = Block(arg_types, [a.hint for a in src.args])
        self.vmap.update(zip(src.args, nb.args))
        return nb

    def op(self, op, dst):
        n = op.name
        regions = []
        if n in ("ad.tape.push", "ad.tape.pop") and self.masked:
            self.masked_tapes.add(op.attrs["tape"])
        if n == "scf.if":
            operands = [self.same(op.operands[0])]

            def sides():
                for region in op.regions:
                    if not region.blocks:
                        regions.append(Region([]))
                        continue
                    nb = self.region_block(region.block, [])
                    self.terminated(region.block, nb, [r in self.varying for r in op.results])
                    regions.append(Region([nb]))
            self.regions_of(op.operands[0] in self.varying, sides)
        elif n == "scf.for":
            body = op.regions[0].block
            lb, ub, step, *inits = op.operands
            carried = [a in self.varying for a in body.args[1:]]
            operands = [self.same(lb), self.same(ub), self.same(step)] + [
                self.as_type(v, c, dst) for v, c in zip(inits, carried)]
            nb = self.region_block(body, [self.type(a) for a in body.args])
            self.regions_of(any(v in self.varying for v in (lb, ub, step)),
                            lambda: self.terminated(body, nb, carried))
            regions.append(Region([nb]))
        elif n == "scf.while":
            before, after = op.regions[0].block, op.regions[1].block
            carried = [a in self.varying for a in before.args]
            operands = [self.as_type(v, c, dst) for v, c in zip(op.operands, carried)]
            nb = self.region_block(before, [self.type(a) for a in before.args])
            na = self.region_block(after, [self.type(a) for a in after.args])

            def both():
                self.block(before, nb)  # scf.condition: operands as they are (see codegen)
                self.terminated(after, na, carried)
            self.regions_of(before.terminator.operands[0] in self.varying, both)
            regions += [Region([nb]), Region([na])]
        elif n == "func.return":
            operands = [self.vec(v, dst) for v in op.operands]
        elif n == "ad.tape.push":
            operands = [self.same(op.operands[0]), self.vec(op.operands[1], dst)]
        elif n in ("ad.tape.pop", "lldiff.max_lanes"):
            operands = [self.same(op.operands[0])]
        elif op.results and any(r in self.varying for r in op.results) and \
                n not in ("scf.condition", "scf.yield"):
            keep = _SCALAR_OK.get(n, ())
            operands = [self.same(v) if i in keep else self.vec(v, dst)
                        for i, v in enumerate(op.operands)]
        else:
            operands = [self.same(v) for v in op.operands]
        attrs = dict(op.attrs)
        if "to" in attrs and op.results and op.results[0] in self.varying:
            attrs["to"] = vector(attrs["to"], self.lanes)  # casts name their result type
        new = Op(n, operands, [self.type(r) for r in op.results], attrs, regions, loc=op.loc)
        for r, nr in zip(op.results, new.results):
            nr.hint = r.hint
            self.vmap[r] = nr
        dst.append(new)

    def terminated(self, src, dst, want_vector):
        """Copy block `src` into `dst`, its terminator's operands made vectors where
        `want_vector` says (what the enclosing op's results or carried values are)."""
        for op in src.ops[:-1]:
            self.op(op, dst)
        term = src.ops[-1]
        operands = [self.as_type(v, w, dst) for v, w in zip(term.operands, want_vector)]
        dst.append(Op(term.name, operands, [], term.attrs, loc=term.loc))
