"""Reverse mode: `f(x) -> y` becomes `f.vjp(x, ybar) -> (y, xbar)`, at the instruction level.

Calls are inlined first (passes/inline.py). The function is then an augmented forward sweep
followed by the reverse sweep in the same body:

* Forward sweep: a clone of the primal. An `scf.if` whose branches hold values the reverse
  sweep reads (the `reads` of derivatives.py for each active op, conditions of nested ifs,
  bounds of nested loops) gets extra results that yield them out (a dummy 0/false from the
  other branch): SSA's way of recording what a branch computed. An active loop gets a tape:
  at the end of each iteration it pushes (`ad.push`) the values the cached-value analysis
  (cache.py) chose; an `scf.while` also counts its iterations in an extra carried value.
* Reverse sweep: ops in reverse order; each active op with an adjoint adds partial x adjoint
  to its active operands' adjoints (fused multiply-add once an adjoint exists), or uses the
  rule's specialised `vjp`. An `scf.if` becomes an `scf.if` on the same condition whose
  branches run their ops' reverse and yield the adjoints of the outer values they touch. A
  loop becomes an `scf.for` over its trip count (recomputed for `scf.for`, counted for
  `scf.while`), run backwards: iteration t rebuilds its induction variable and affine
  counters from t, pops (`ad.pop`) what was cached, recomputes the rest, and carries the
  adjoints of the loop-carried values and of the outer values the body reads.

`break`, `continue` and early `return` need nothing special: the frontend has already turned
them into `scf.while` loops with flags, and the flags' branches are taken again as recorded.

Adjoints of scalars are SSA values: summed where a value has several uses, carried through the
reverse loops as iter_args (the adjoints of the loop-carried values and accumulators for the
outer values the body reads). No `ad.cell` (a memory cell for an adjoint) is needed until
arrays have shadows.

With `checkpoints=c`, top-level loops that qualify are not taped but checkpointed
(checkpoint.py: revolve over at most c snapshots; it reuses `forward_window` and
`reverse_window` below to record and reverse one iteration at a time).

passes/tape.py then gives the abstract `ad.push`/`ad.pop` pairs memory. Signature of
`f.vjp.<mask>`: the primal arguments, one adjoint seed per float result, a cotangent array
per returned array that gets adjoint code (attribute `array_seeds`: their result indices),
then a shadow array per differentiated array argument; results: the primal results, then the
adjoint of each differentiated float argument.
`LLDIFF_EXPLAIN=cache` prints each loop's decisions. IR -> IR only.
"""

import itertools
import os
import sys

from lldiff.ir import I1, I64, Block, Builder, Func, Op, Region, Value, memref, print_func
from lldiff.ir.printer import Namer

from . import cache, checkpoint
from .activity import analyze, differentiable
from .derivatives import Emit, custom_rule_of, helper_func, op_kind, op_rule
from .inline import inline_calls
from .rewrite import trip_count, zeros_like

__all__ = ["vjp_func", "vjp_name", "grad_func"]


def vjp_name(name, active_args, useful=None, checkpoints=None):
    tail = "" if useful is None else "." + "".join("1" if u else "0" for u in useful)
    if checkpoints is not None:
        tail += f".ckpt{checkpoints}"
    return f"{name}.vjp." + "".join("1" if a else "0" for a in active_args) + tail


def vjp_func(module, name, active_args, useful=None, checkpoints=None):
    """Add the vjp of `module[name]` to `module` unless present; return its name.

    `useful`: a flag per result (default: every float result). Results not flagged get no
    adjoint code at all and their seeds are ignored, rather than multiplied through: a zero
    seed times an infinite partial such as asin'(1) would be NaN. `checkpoints`: an int c >= 1
    checkpoints the function's top-level loops that qualify (checkpoint.py) with at most c
    snapshots each instead of taping every iteration.
    """
    func = module[name]
    active_args = tuple(bool(a) and differentiable(t) for a, t in zip(active_args, func.arg_types))
    if useful is not None:
        useful = tuple(bool(u) and t.is_float for u, t in zip(useful, func.result_types))
        if useful == tuple(t.is_float for t in func.result_types):
            useful = None
    new_name = vjp_name(name, active_args, useful, checkpoints)
    if new_name not in module.funcs:
        func = inline_calls(module, func)
        act = analyze(module, func, active_args, useful)
        rev = _Reverse(module, func, act, checkpoints)
        module.add(rev.build(new_name))
        if os.environ.get("LLDIFF_EXPLAIN", "") in ("cache", "all"):
            sys.stderr.write(rev.explain())
    return new_name


_LOOPS = ("scf.for", "scf.while")


class _LoopInfo:
    __slots__ = ("tape", "plan", "affine", "shadowed")

    def __init__(self, tape, plan, affine):
        self.tape = tape
        self.plan = plan
        self.affine = affine  # carry index -> (init value, step value)
        self.shadowed = []    # carried arrays whose shadows the forward loop carries


def _loop_parts(op):
    """(body block, carried block args, init operands) of a loop."""
    if op.name == "scf.for":
        body = op.regions[0].block
        return body, body.args[1:], op.operands[3:]
    return op.regions[1].block, op.regions[1].block.args, op.operands


class _Reverse:
    def __init__(self, module, func, act, checkpoints=None):
        self.module = module
        self.func = func
        self.act = act
        self.checkpoints = checkpoints
        self.ckpt = {}       # checkpointed loop op -> what its forward sweep left (checkpoint.py)
        self.func_attrs = {}
        self.vmap = {}
        self.counts = {}     # scf.while -> a Value standing for its trip count
        self.shadow = {}     # active array -> its shadow (adjoints, element by element)
        self.out_shadow = {}  # returned array -> the cotangent array given for it
        self.loops = {}      # loop op -> _LoopInfo
        self.tapes = itertools.count()
        self._needs = {}
        self._inside = {}
        self._plans = {}
        # an array read can be repeated in the reverse sweep if the array is never written;
        # only arguments and arrays made at the top are known by name (a carried array is
        # another array in another iteration)
        written = {op.operands[1] for op in func.walk() if op.name == "lldiff.store"}
        named = set(func.args) | {op.result for op in func.body.block.ops
                                  if op.name == "lldiff.alloc"}
        self.reread = lambda op: op.operands[0] in named and op.operands[0] not in written

    def build(self, new_name):
        f = self.func
        ret = f.body.block.terminator
        seeds = [t for t in f.result_types if t.is_float]
        # a returned array the results mask keeps: its cotangent array is its shadow
        out_arrays = [v for v, u in zip(ret.operands, self.act.useful_results)
                      if u and v.type.is_memref and self.act.active_memory(v)]
        on = self.act.active_args
        active = [a for a, m in zip(f.args, on) if m and a.type.is_float]
        arrays = [a for a, m in zip(f.args, on) if m and a.type.is_memref]
        names = f.arg_names + [f"ybar{i}" if len(seeds) > 1 else "ybar"
                               for i in range(len(seeds))] + \
            [f"ybar_array{i}" for i in range(len(out_arrays))] + \
            [f"{n}_bar" for a, n in zip(f.args, f.arg_names) if a in arrays]
        nf = Func(new_name, f.arg_types + seeds + [v.type for v in out_arrays] +
                  [a.type for a in arrays],
                  f.result_types + [a.type for a in active], names, loc=f.loc)
        nf.attrs["array_seeds"] = tuple(i for i, v in enumerate(ret.operands)
                                        if v in out_arrays)
        self.func_attrs = nf.attrs
        for a, na in zip(f.args, nf.args):
            self.vmap[a] = na
        k = len(f.args) + len(seeds)
        for v, sa in zip(out_arrays, nf.args[k:]):
            self.out_shadow[v] = sa  # the caller's cotangent (a copy): used up in place
        for a, sa in zip(arrays, nf.args[k + len(out_arrays):]):
            self.shadow[a] = sa  # the caller's zeros; the adjoint accumulates into it
        b = Builder(nf.body.block, f.loc)
        for a in f.args:  # an array argument that receives differentiated values internally
            if a not in self.shadow and self.act.active_memory(a):
                self.shadow[a] = zeros_like(b, self.vmap[a], "shadow")
        body = f.body.block
        for op in body.ops[:-1]:
            self.forward(op, Builder(nf.body.block, op.loc))
        adj = {}
        seed_args = iter(nf.args[len(f.args):])
        for i, v in enumerate(ret.operands):
            if v.type.is_float:
                s = next(seed_args)
                if self.act.useful_results[i] and self.act.active(v):
                    self.add(adj, v, s, b)
        self.reverse_ops(body.ops[:-1], adj, nf.body.block)
        outs = [self.vmap[v] for v in ret.operands]
        for a in active:
            outs.append(adj[a] if a in adj else b.const(0.0, a.type))
        b.insert(Op("func.return", outs, [], loc=ret.loc))
        return nf

    # --- what the reverse sweep reads ------------------------------------------------------

    def count(self, op):
        v = self.counts.get(op)
        if v is None:
            v = self.counts[op] = Value(I64, "n")
        return v

    def inside(self, op):
        """Everything defined in `op`'s regions (and the trip counts of whiles inside it)."""
        got = self._inside.get(op)
        if got is None:
            got = set()
            for inner in op.walk():
                if inner is not op:
                    got.update(inner.results)
                    if inner.name == "scf.while":
                        got.add(self.count(inner))
                for r in inner.regions:
                    for blk in r.blocks:
                        got.update(blk.args)
            self._inside[op] = got
        return got

    def region_active(self, op):
        """Whether the reverse sweep has work in `op`: an active value inside, or a store
        into an array with a shadow (its reverse moves or clears the cell's adjoint even
        when the stored value is inactive)."""
        for inner in op.walk():
            if any(self.act.active(v) for v in inner.results):
                return True
            if inner.name == "lldiff.store" and self.act.active_memory(inner.operands[1]):
                return True
        return any(self.act.active(v) for r in op.regions for blk in r.blocks
                   for v in list(blk.args) + list(blk.terminator.operands))

    def needs(self, op):
        """Values the reverse of `op` reads; for a region op, those defined outside its loops
        (values defined inside an `scf.if` are yielded out of it by the forward sweep)."""
        got = self._needs.get(op)
        if got is not None:
            return got
        n = op.name
        out = []
        if n in _LOOPS and self.region_active(op):
            out += op.operands[:3] if n == "scf.for" else [self.count(op)]
            inner = self.inside(op)
            for init, step in self.affine(op).values():
                out += [init] if step in inner else [init, step]
            for region in op.regions:
                for top in region.block.ops:
                    out += [v for v in self.needs(top) if v not in inner]
            for rop in self.plan_of(op).recompute:  # what recomputation starts from
                out += [v for v in rop.operands if v not in inner]
        elif n == "scf.if" and self.region_active(op):
            out.append(op.operands[0])
            for region in op.regions:
                for top in region.block.ops if region.blocks else ():
                    out += self.needs(top)
        elif n == "lldiff.alloc" and self.act.active_memory(op.result) and \
                op.parent is not self.func.body.block:
            out += op.operands  # its shadow is made again in the reverse sweep
        elif n in ("lldiff.load", "lldiff.store") and self.act.active_memory(
                op.operands[0 if n == "lldiff.load" else 1]):
            out += op.operands[1:] if n == "lldiff.load" else op.operands[2:]
        elif op_kind(op) == "rule" and any(self.act.active(r) for r in op.results):
            rule = op_rule(op)
            names = set()
            for i, v in enumerate(op.operands):
                if rule.has_partial(i) and self.act.active(v):
                    names |= rule.reads[i]
            out += [op.operands[int(k[1:])] for k in sorted(names) if k.startswith("x")]
            if "y" in names:
                out.append(op.result)
        got = self._needs[op] = list(dict.fromkeys(out))
        return got

    def plan_of(self, op):
        """The cached-value analysis of loop `op` (cache.py), memoized."""
        got = self._plans.get(op)
        if got is None:
            body, carries, _ = _loop_parts(op)
            inner = self.inside(op)
            needed = [v for top in body.ops for v in self.needs(top) if v in inner]
            free = {carries[i] for i in self.affine(op)}
            if op.name == "scf.for":
                free.add(body.args[0])
                # carried arrays are recovered in the reverse sweep by undoing their permutation
                free |= {a for a in carries if a.type.is_memref}
            got = self._plans[op] = cache.plan(body, list(dict.fromkeys(needed)), free,
                                               reread=self.reread)
        return got

    def affine(self, op):
        """Integer carries advanced by a loop-invariant step every iteration: carry index ->
        (init, step). The reverse sweep rebuilds them as init + t * step."""
        body, carries, inits = _loop_parts(op)
        y = body.terminator
        out = {}
        for i, a in enumerate(carries):
            if a.type is not I64:
                continue
            if op.name == "scf.while":
                before = op.regions[0].block
                if before.terminator.operands[1 + i] is not before.args[i]:
                    continue
            v = y.operands[i]
            d = getattr(v, "op", None)
            if d is None or d.name != "arith.addi" or d.parent is not body:
                continue
            x, c = d.operands
            if c is a:
                x, c = c, x
            if x is not a:
                continue
            cop = getattr(c, "op", None)
            invariant = c not in self.inside(op) or (cop is not None and
                                                     cop.name == "arith.constant")
            if invariant:
                out[i] = (inits[i], c)
        return out

    # --- forward sweep ---------------------------------------------------------------------

    def forward(self, op, b):
        n = op.name
        if n in _LOOPS and self.region_active(op):
            if self.checkpoints and checkpoint.qualifies(self, op):
                return checkpoint.forward(self, op, b)
            return self.forward_loop(op, b)
        if n == "func.call" and custom_rule_of(op) is None and \
                any(self.act.active(r) for r in op.results):
            raise AssertionError("calls are inlined before reverse mode")
        if n == "scf.if":
            return self.forward_if(op, b)
        new = Op(n, [self.vmap[v] for v in op.operands], [r.type for r in op.results],
                 op.attrs, [self.clone_region(r) for r in op.regions], loc=op.loc)
        b.insert(new)
        for r, nr in zip(op.results, new.results):
            nr.hint = r.hint
            self.vmap[r] = nr
        if n == "lldiff.alloc" and self.act.active_memory(op.result) and \
                op.parent is self.func.body.block:
            # (an array made inside a loop or branch gets its shadow in the reverse sweep of
            # that iteration or branch: see local_shadows)
            self.shadow[op.result] = self.out_shadow.get(op.result) or \
                zeros_like(b, new.result, "shadow")

    def clone_region(self, region):
        """A clone of `region` through `forward` (active ops inside keep their own tapes)."""
        nr = Region([])
        for block in region.blocks:
            nb_region, nb = Builder().block_region([a.type for a in block.args],
                                                   [a.hint for a in block.args])
            for a, na in zip(block.args, nb.args):
                self.vmap[a] = na
            for op in block.ops:
                self.forward(op, Builder(nb, op.loc))
            nr.blocks.append(nb)
            nb.parent = nr
        return nr

    def forward_if(self, op, b):
        # an array result holding differentiated values: the if also yields its shadow
        arrs = [i for i, r in enumerate(op.results)
                if r.type.is_memref and self.act.active_memory(r)]
        if arrs and op.parent is not self.func.body.block:
            raise NotImplementedError(
                "reverse mode through an array chosen by a branch inside a loop"
                f"{' at ' + str(op.loc) if op.loc else ''} is not supported yet (forward mode "
                "is)")
        need = []
        for region in op.regions:
            if not region.blocks:
                need.append([])
                continue
            inner = set()
            for top in region.block.ops:
                inner.update(top.results)
                if top.regions:
                    inner |= self.inside(top)
                if top.name == "scf.while":
                    inner.add(self.count(top))
            vals = [v for top in region.block.ops for v in self.needs(top) if v in inner]
            need.append(list(dict.fromkeys(vals)))
        regions = []
        for k, region in enumerate(op.regions):
            if not region.blocks:
                regions.append(Region())
                continue
            nr, nb = Builder().block_region()
            for inner in region.block.ops[:-1]:
                self.forward(inner, Builder(nb, inner.loc))
            y = region.block.terminator
            yb = Builder(nb, y.loc)
            outs = [self.vmap[v] for v in y.operands]
            for j, vals in enumerate(need):
                for v in vals:
                    outs.append(self.vmap[v] if j == k else _dummy(yb, v.type))
            for i in arrs:
                outs.append(self.branch_shadow(y.operands[i], yb, op))
            yb.insert(Op("scf.yield", outs, [], loc=y.loc))
            regions.append(nr)
        extra = [v.type for vals in need for v in vals] + [op.results[i].type for i in arrs]
        if extra and not all(r.blocks for r in op.regions):
            # an if without else yields nothing; give it an else that yields the dummies
            nr, nb = Builder().block_region()
            yb = Builder(nb, op.loc)
            yb.insert(Op("scf.yield", [_dummy(yb, t) for t in extra], [], loc=op.loc))
            regions[1] = nr
        new = Op("scf.if", [self.vmap[op.operands[0]]], [r.type for r in op.results] + extra,
                 op.attrs, regions, loc=op.loc)
        b.insert(new)
        for r, nr in zip(op.results, new.results):
            nr.hint = r.hint
            self.vmap[r] = nr
        rest = iter(new.results[len(op.results):])
        for vals in need:
            for v in vals:
                nv = next(rest)
                nv.hint = v.hint
                self.vmap[v] = nv  # the reverse sweep reads it here
        for i in arrs:
            self.shadow[op.results[i]] = next(rest)

    def branch_shadow(self, m, b, op):
        """The shadow a branch yields for array `m` it yields: `m`'s own (an argument or an
        array made at the top), or zeros when `m` holds no differentiated values."""
        if m in self.shadow:
            return self.shadow[m]
        if self.act.active_memory(m):
            raise NotImplementedError(
                "reverse mode through a branch that yields an array it made"
                f"{' at ' + str(op.loc) if op.loc else ''} is not supported yet")
        return zeros_like(b, self.vmap[m], "shadow")

    def forward_loop(self, op, b):
        body, carries, inits = _loop_parts(op)
        if op.name == "scf.while":
            before = op.regions[0].block
            if before.terminator.operands[1:] != before.args or any(
                    self.act.active(v) for inner in before.ops for v in inner.results):
                raise NotImplementedError("reverse mode through an scf.while whose condition "
                                          "region computes active values")
        affine = self.affine(op)
        plan = self.plan_of(op)
        if any(v.type.is_memref for v in plan.cached):
            raise NotImplementedError("reverse mode would have to record which array a loop "
                                      "iteration used; not supported yet")
        tape = next(self.tapes)
        self.loops[op] = _LoopInfo(tape, plan, affine)

        def push_cached(nb):
            pb = Builder(nb, op.loc)
            for v in plan.cached:
                pb.create("ad.push", [self.vmap[v]], {"tape": tape}, result_types=[])

        attrs = dict(op.attrs, tape=tape)
        # arrays carried by the loop (double buffering) carry their shadows alongside
        perm = self.array_permutation(op)
        shadowed = list(perm) if any(self.act.active_memory(carries[i]) or
                                     self.act.active_memory(op.results[i])
                                     for i in perm) else []
        self.loops[op].shadowed = shadowed
        inits_s = [self.shadow.get(inits[i]) or zeros_like(b, self.vmap[inits[i]], "shadow")
                   for i in shadowed]
        if op.name == "scf.for":
            region = self.clone_body(body, push_cached, shadowed)
            new = Op("scf.for", [self.vmap[v] for v in op.operands] + inits_s,
                     [r.type for r in op.results] + [v.type for v in inits_s], attrs,
                     [region], loc=op.loc)
            b.insert(new)
            for i, r in zip(shadowed, new.results[len(op.results):]):
                self.shadow[op.results[i]] = r
        else:
            stypes = [v.type for v in inits_s]
            # an extra carried counter: the number of times the body ran; and the shadows
            # of carried arrays alongside them
            before = op.regions[0].block
            bregion, bb = Builder().block_region(
                [a.type for a in before.args] + [I64] + stypes,
                [a.hint for a in before.args] + ["n"] + [None] * len(stypes))
            for a, na in zip(before.args, bb.args):
                self.vmap[a] = na
            for inner_op in before.ops[:-1]:
                self.forward(inner_op, Builder(bb, inner_op.loc))
            c = before.terminator
            Builder(bb, c.loc).insert(Op("scf.condition", [self.vmap[c.operands[0]]] +
                                         list(bb.args), [], loc=c.loc))
            aregion, ab = Builder().block_region(
                [a.type for a in body.args] + [I64] + stypes,
                [a.hint for a in body.args] + ["n"] + [None] * len(stypes))
            for a, na in zip(body.args, ab.args):
                self.vmap[a] = na
            for i, sa in zip(shadowed, ab.args[len(body.args) + 1:]):
                self.shadow[carries[i]] = sa
            for inner_op in body.ops[:-1]:
                self.forward(inner_op, Builder(ab, inner_op.loc))
            push_cached(ab)
            yb = Builder(ab, op.loc)
            cnt = yb.value("arith.addi", ab.args[len(body.args)], yb.const(1, I64), hint="n")
            y = body.terminator
            yb.insert(Op("scf.yield", [self.vmap[v] for v in y.operands] + [cnt] +
                         [self.shadow[y.operands[i]] for i in shadowed], [], loc=y.loc))
            zero = b.const(0, I64)
            new = Op("scf.while", [self.vmap[v] for v in op.operands] + [zero] + inits_s,
                     [r.type for r in op.results] + [I64] + stypes, attrs,
                     [bregion, aregion], loc=op.loc)
            b.insert(new)
            cnt_result = new.results[len(op.results)]
            cnt_result.hint = "n"
            self.vmap[self.count(op)] = cnt_result
            for i, r in zip(shadowed, new.results[len(op.results) + 1:]):
                self.shadow[op.results[i]] = r
        for r, nr in zip(op.results, new.results):
            nr.hint = r.hint
            self.vmap[r] = nr

    def clone_body(self, body, finish, shadowed=()):
        """Clone an scf.for body; carried arrays listed in `shadowed` (carry indices) get
        their shadow as an extra block argument and yield."""
        carries = body.args[1:]
        region, nb = Builder().block_region(
            [a.type for a in body.args] + [carries[i].type for i in shadowed],
            [a.hint for a in body.args] + [None] * len(shadowed))
        for a, na in zip(body.args, nb.args):
            self.vmap[a] = na
        for i, sa in zip(shadowed, nb.args[len(body.args):]):
            self.shadow[carries[i]] = sa
        for inner_op in body.ops[:-1]:
            self.forward(inner_op, Builder(nb, inner_op.loc))
        finish(nb)
        y = body.terminator
        outs = [self.vmap[v] for v in y.operands] + [self.shadow[y.operands[i]]
                                                      for i in shadowed]
        Builder(nb, y.loc).insert(Op("scf.yield", outs, [], loc=y.loc))
        return region

    def array_permutation(self, op):
        """For a loop carrying arrays: carry index -> the carry index its next value
        comes from (u, v = v, u gives {0: 1, 1: 0}). The reverse sweep runs this backwards
        to know which array each iteration used. NotImplementedError unless the arrays are
        only permuted."""
        body, carries, _ = _loop_parts(op)
        y = body.terminator
        mem = [i for i, a in enumerate(carries) if a.type.is_memref]
        perm = {}
        for i in mem:
            v = y.operands[i]
            if v not in carries or carries.index(v) not in mem:
                raise NotImplementedError(
                    "reverse mode through a loop that carries a new array from one "
                    f"iteration to the next{' at ' + str(op.loc) if op.loc else ''} is not "
                    "supported yet (swapping arrays is)")
            perm[i] = carries.index(v)
        if sorted(perm.values()) != sorted(perm):
            raise NotImplementedError("reverse mode through a loop whose carried arrays are "
                                      "not a permutation of each other is not supported yet")
        return perm

    # --- reverse sweep ---------------------------------------------------------------------

    def add(self, adj, v, contrib, b, partial=None):
        """adj[v] += partial * contrib (partial None: 1), fused once adj[v] exists."""
        e = Emit(b, v.type)
        have = v in adj
        if partial is None or isinstance(partial, float) and partial == 1.0:
            adj[v] = e.add(adj[v], contrib) if have else contrib
        elif isinstance(partial, float) and partial == -1.0:
            adj[v] = e.sub(adj[v], contrib) if have else e.neg(contrib)
        elif have:
            adj[v] = e.op("math.fma", partial, contrib, adj[v])
        else:
            adj[v] = e.mul(partial, contrib)

    def reverse_ops(self, ops, adj, block):
        for op in reversed(ops):
            b = Builder(block, op.loc)
            if op.name == "scf.if":
                self.reverse_if(op, adj, b)
                continue
            if op.name in _LOOPS:
                if op in self.ckpt:
                    checkpoint.reverse(self, op, adj, b)
                elif op in self.loops:
                    self.reverse_loop(op, adj, b)
                continue
            if op.name == "lldiff.load":
                m = op.operands[0]
                if op.result in adj and m in self.shadow:
                    # shadow[idx] += ybar
                    sm, idx = self.shadow[m], [self.vmap[v] for v in op.operands[1:]]
                    cur = b.value("lldiff.load", sm, *idx, shadow=True)
                    b.create("lldiff.store", [Emit(b, cur.type).add(cur, adj[op.result]), sm]
                             + idx, {"shadow": True})
                continue
            if op.name == "lldiff.store":
                v, m = op.operands[:2]
                if m in self.shadow:
                    # the cell's adjoint goes to the stored value; the overwritten cell's
                    # earlier value gets none of it
                    sm, idx = self.shadow[m], [self.vmap[x] for x in op.operands[2:]]
                    g = b.value("lldiff.load", sm, *idx, shadow=True)
                    b.create("lldiff.store", [b.const(0.0, g.type), sm] + idx, {"shadow": True})
                    if self.act.active(v):
                        self.add(adj, v, g, b)
                continue
            if op_kind(op) != "rule":
                continue
            r = op.results[0]
            if r not in adj:
                continue
            rule = op_rule(op)
            need = [rule.has_partial(i) and self.act.active(v) for i, v in enumerate(op.operands)]
            if not any(need):
                continue
            x = [self.vmap.get(v) for v in op.operands]
            y = self.vmap.get(r)
            ybar = adj[r]
            e = Emit(b, r.type, lambda h: self.helper(h, r.type))
            if rule.vjp is not None:
                bars = rule.vjp(e, x, y, ybar, need)
                for v, bar, on in zip(op.operands, bars, need):
                    if on and bar is not None:
                        self.add(adj, v, bar, b)
            else:
                # partials are built together; keep only the ops of those needed (the others
                # may read values the reverse sweep does not have, see `needs`)
                scratch = Block()
                partials = rule.partials(Emit(Builder(scratch, op.loc), r.type,
                                              lambda h: self.helper(h, r.type)), x, y)
                live = {p for p, on in zip(partials, need) if on and isinstance(p, Value)}
                keep = []
                for o in reversed(scratch.ops):
                    if any(res in live for res in o.results):
                        live.update(o.operands)
                        keep.append(o)
                for o in reversed(keep):
                    block.append(o)
                for v, p, on in zip(op.operands, partials, need):
                    if on and p is not None:
                        self.add(adj, v, ybar, b, partial=p)

    def adjoint_targets(self, op):
        """Active values defined outside `op` that its reverse adds adjoints to, in order."""
        inner = self.inside(op)
        out = {}
        for o in op.walk():
            if o is op:
                continue
            if o.name == "scf.yield" or o.name in _LOOPS or op_kind(o) == "rule" and \
                    any(self.act.active(r) for r in o.results):
                for v in o.operands:
                    if v not in inner and self.act.active(v):
                        out[v] = None
            elif o.name == "lldiff.store":
                v = o.operands[0]
                if v not in inner and self.act.active(v):
                    out[v] = None
        return list(out)

    def local_shadows(self, block, b):
        """Zero shadows, made at the start of this reverse iteration or branch, for the
        arrays holding differentiated values that `block` allocates (their adjoints live
        and die within it)."""
        for op in block.ops:
            if op.name == "lldiff.alloc" and self.act.active_memory(op.result):
                t = op.result.type
                self.shadow[op.result] = b.create(
                    "lldiff.alloc", [self.vmap[v] for v in op.operands],
                    {"type": memref(t.elem, t.rank), "fill": 0.0}, hint="shadow").result

    def touches_shadow(self, op):
        """Whether `op` reads or writes an array that has a shadow (its reverse then moves
        adjoints through memory even when no SSA adjoint reaches it)."""
        return any(o.name in ("lldiff.load", "lldiff.store") and
                   o.operands[0 if o.name == "lldiff.load" else 1] in self.shadow
                   for o in op.walk())

    def reverse_if(self, op, adj, b):
        seeds = [(i, r) for i, r in enumerate(op.results) if r in adj]
        outer = self.adjoint_targets(op)
        if not self.touches_shadow(op) and (not seeds or not outer):
            return
        regions = []
        for k, region in enumerate(op.regions):
            nr, nb = Builder().block_region()
            local = {}
            yb = Builder(nb, op.loc)
            if region.blocks:
                self.local_shadows(region.block, yb)
                y = region.block.terminator
                for i, r in seeds:
                    v = y.operands[i]
                    if self.act.active(v):
                        self.add(local, v, adj[r], yb)
                self.reverse_ops(region.block.ops[:-1], local, nb)
            yb = Builder(nb, op.loc)
            yb.insert(Op("scf.yield", [local[v] if v in local else yb.const(0.0, v.type)
                                       for v in outer], [], loc=op.loc))
            regions.append(nr)
        rev = Op("scf.if", [self.vmap[op.operands[0]]], [v.type for v in outer], {}, regions,
                 loc=op.loc)
        b.insert(rev)
        for v, bar in zip(outer, rev.results):
            self.add(adj, v, bar, b)

    def carried_adjoints(self, op):
        """Indices of the carried values of loop `op` whose adjoints its reverse carries."""
        _, carries, _ = _loop_parts(op)
        return [i for i, a in enumerate(carries) if a.type.is_float and
                (self.act.active(a) or self.act.active(op.results[i]))]

    def reverse_loop(self, op, adj, b):
        body, carries, inits = _loop_parts(op)
        idx = self.carried_adjoints(op)
        if not any(op.results[i] in adj for i in idx) and not self.touches_shadow(op):
            return  # no adjoint reaches the loop: its tape is left as it is and freed
        outer = self.adjoint_targets(op)
        if op.name == "scf.for":
            n = trip_count(b, *(self.vmap[v] for v in op.operands[:3]))
        else:
            n = self.vmap[self.count(op)]
        init_bars = [adj[op.results[i]] if op.results[i] in adj else
                     b.const(0.0, carries[i].type) for i in idx]
        init_accs = [adj[v] if v in adj else b.const(0.0, v.type) for v in outer]
        rev = self.reverse_iterations(op, b, n, None, init_bars, init_accs)
        for v, r in zip(outer, rev.results[len(idx):]):
            r.hint = v.hint
            adj[v] = r  # the accumulator started from adj[v]
        for k, i in enumerate(idx):
            rev.results[k].hint = "bar"
            if self.act.active(inits[i]):
                self.add(adj, inits[i], rev.results[k], b)

    def forward_window(self, op, b, k, state):
        """Iteration `k` of loop `op`, from its carried values `state`, recording its tape:
        what checkpoint.py's reverse sweep runs right before reversing that iteration."""
        body, carries, _ = _loop_parts(op)
        plan = self.plan_of(op)
        tape = next(self.tapes)
        self.loops[op] = _LoopInfo(tape, plan, self.affine(op))

        def push_cached(nb):
            pb = Builder(nb, op.loc)
            for v in plan.cached:
                pb.create("ad.push", [self.vmap[v]], {"tape": tape}, result_types=[])

        if op.name == "scf.for":
            lb, _, step = (self.vmap[v] for v in op.operands[:3])
            start = b.value("arith.addi", lb, b.value("arith.muli", k, step))
            bounds = [start, b.value("arith.addi", start, step), step]
            region = self.clone_body(body, push_cached)
        else:
            region, nb = Builder().block_region([I64] + [a.type for a in body.args],
                                                ["j"] + [a.hint for a in body.args])
            for a, na in zip(body.args, nb.args[1:]):
                self.vmap[a] = na
            for inner_op in body.ops[:-1]:
                self.forward(inner_op, Builder(nb, inner_op.loc))
            push_cached(nb)
            y = body.terminator
            Builder(nb, y.loc).insert(Op("scf.yield", [self.vmap[v] for v in y.operands], [],
                                         loc=y.loc))
            bounds = [b.const(0, I64), b.const(1, I64), b.const(1, I64)]
        b.insert(Op("scf.for", bounds + list(state), [a.type for a in carries], {"tape": tape},
                    [region], loc=op.loc))

    def reverse_window(self, op, b, k, bars, accs):
        """The reverse of iteration `k` of loop `op` right after `forward_window` recorded
        it: (adjoints of its carried values before it, accumulators `accs` updated)."""
        rev = self.reverse_iterations(op, b, b.const(1, I64), k, bars, accs)
        return list(rev.results[:len(bars)]), list(rev.results[len(bars):])

    def reverse_iterations(self, op, b, n, first, init_bars, init_accs):
        """Emit the `scf.for` that reverses iterations first..first+n-1 of loop `op` (first
        None: 0), last first, carrying the adjoints of the carried values and accumulators
        for the outer values the body reads; return that op."""
        info = self.loops[op]
        body, carries, inits = _loop_parts(op)
        idx = self.carried_adjoints(op)
        outer = self.adjoint_targets(op)
        # carried arrays run backwards too: each reverse iteration recovers the arrays of
        # its forward iteration from the next one's by undoing the permutation
        perm = self.array_permutation(op)
        mem = sorted(perm)
        shadowed = info.shadowed
        init_mem = [self.vmap[op.results[i]] for i in mem] + \
            [self.shadow[op.results[i]] for i in shadowed]
        types = [I64] + [carries[i].type for i in idx] + [v.type for v in outer] + \
            [v.type for v in init_mem]
        region, rb = Builder().block_region(types, ["j"] + [carries[i].hint for i in idx] +
                                            [v.hint for v in outer] + [None] * len(init_mem))
        j, rest = rb.args[0], rb.args[1:]
        bars, accs = rest[:len(idx)], rest[len(idx):len(idx) + len(outer)]
        cur = dict(zip(mem, rest[len(idx) + len(outer):]))
        cur_s = dict(zip(shadowed, rest[len(idx) + len(outer) + len(mem):]))
        for a in bars:
            a.hint = "bar" if not a.hint else a.hint.lstrip(".") + "_bar"
        for a in accs:
            a.hint = "acc" if not a.hint else a.hint.lstrip(".") + "_bar"
        bb = Builder(rb, op.loc)
        one = bb.const(1, I64)
        t = bb.value("arith.subi", bb.value("arith.subi", n, one), j, hint="t")
        if first is not None:
            t = bb.value("arith.addi", first, t, hint="t")
        saved = dict(self.vmap)
        for i in mem:  # carry perm[i] held, in this iteration, what carry i holds next
            self.vmap[carries[perm[i]]] = cur[i]
        for i in shadowed:
            self.shadow[carries[perm[i]]] = cur_s[i]
        if op.name == "scf.for":
            lb, _, step = (self.vmap[v] for v in op.operands[:3])
            iv = body.args[0]
            self.vmap[iv] = bb.value("arith.addi", lb, bb.value("arith.muli", t, step),
                                     hint=iv.hint)
        for i, (init, step) in info.affine.items():
            sv = self.vmap.get(step)
            if step in self.inside(op):  # a constant inside the body
                sv = bb.const(step.op.attrs["value"], I64)
            self.vmap[carries[i]] = bb.value("arith.addi", self.vmap[init],
                                             bb.value("arith.muli", t, sv), hint=carries[i].hint)
        for v in reversed(info.plan.cached):
            self.vmap[v] = bb.create("ad.pop", [], {"tape": info.tape, "type": v.type},
                                     result_types=[v.type], hint=v.hint).result
        for rop in info.plan.recompute:
            new = bb.create(rop.name, [self.vmap[v] for v in rop.operands], rop.attrs,
                            result_types=[r.type for r in rop.results])
            for r, nr in zip(rop.results, new.results):
                nr.hint = r.hint
                self.vmap[r] = nr
        self.local_shadows(body, bb)
        local = dict(zip(outer, accs))
        y = body.terminator
        for k, i in enumerate(idx):
            if self.act.active(y.operands[i]):
                self.add(local, y.operands[i], bars[k], bb)
        self.reverse_ops(body.ops[:-1], local, rb)
        yb = Builder(rb, op.loc)
        outs = [local[carries[i]] if carries[i] in local else yb.const(0.0, carries[i].type)
                for i in idx] + [local[v] for v in outer]
        outs += [self.vmap[carries[i]] for i in mem] + [self.shadow[carries[i]] for i in shadowed]
        yb.insert(Op("scf.yield", outs, [], loc=op.loc))
        self.vmap = saved
        rev = Op("scf.for", [b.const(0, I64), n, b.const(1, I64)] + init_bars + init_accs +
                 init_mem, types[1:], {}, [region], loc=op.loc)
        b.insert(rev)
        return rev

    def helper(self, name, ftype):
        return helper_func(self.module, name, ftype)

    # --- explanation -----------------------------------------------------------------------

    def explain(self):
        """One paragraph per loop: what its tape holds, what is recomputed or rebuilt."""
        namer = Namer()
        lines = [print_func(self.func, namer).rstrip(),
                 f"// cached-value analysis of @{self.func.name}"]
        for op, rec in self.ckpt.items():
            where = f" at {op.loc}" if op.loc else ""
            lines.append(f"{op.name}{where}: checkpointed (revolve), at most "
                         f"{self.checkpoints} snapshots of {rec.entry} bytes (tape {rec.tape}); "
                         f"each reversed iteration is recorded again on its own tape:")
        for op, info in self.loops.items():
            p = info.plan
            where = f" at {op.loc}" if op.loc else ""
            lines.append(f"{op.name}{where} (tape {info.tape}): "
                         f"{p.bytes_per_iteration} bytes per iteration")
            for v in p.needed:
                lines.append(f"  {namer(v)}: {v.type} {p.why[v]}")
            for v in p.free:
                if p.why.get(v) != "free":
                    lines.append(f"  {namer(v)}: {v.type} free (rebuilt from the iteration)")
            if p.recompute:
                names = ", ".join(namer(r) for rop in p.recompute for r in rop.results)
                lines.append(f"  recomputed in the reverse sweep: {names}")
        return "\n".join(lines) + "\n"


def _dummy(b, t):
    return b.const(False if t is I1 else 0.0 if t.is_float else 0, t)


def grad_func(module, name, active_args, seeded, checkpoints=None):
    """`f.grad.<mask>(x, xbar arrays) -> (y..., xbar scalars...)`: the vjp of `module[name]`
    with its seeds fixed (1.0 for the float results whose `seeded` flag is set, 0.0 for the
    others), so a gradient is one native call taking the primal arguments (and, for arrays, the
    zero arrays their adjoints accumulate into). Returns the new function's name."""
    func = module[name]
    rev = module[vjp_func(module, name, active_args, seeded, checkpoints)]
    mask = "".join("1" if a and t.is_float else "0" for a, t in zip(active_args, func.arg_types))
    tag = "".join("1" if s else "0" for s in seeded)
    new_name = f"{name}.grad.{mask}.{tag}" + (f".ckpt{checkpoints}" if checkpoints else "")
    if new_name not in module.funcs:
        arrays = rev.arg_types[len(func.arg_types) + sum(t.is_float for t in
                                                         func.result_types):]
        nf = Func(new_name, func.arg_types + arrays, rev.result_types,
                  func.arg_names + rev.arg_names[len(rev.arg_names) - len(arrays):],
                  loc=func.loc)
        b = Builder(nf.body.block, func.loc)
        seeds = [b.const(1.0 if on else 0.0, t)
                 for t, on in zip(func.result_types, seeded) if t.is_float]
        n = len(func.args)
        call = b.create("func.call", list(nf.args[:n]) + seeds + list(nf.args[n:]),
                        {"callee": rev.name}, result_types=rev.result_types)
        b.insert(Op("func.return", call.results, [], loc=func.loc))
        module.add(nf)
    return new_name
