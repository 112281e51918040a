"""Forward mode: `f(x) -> y` becomes `f.jvp(x, dx) -> (y, dy)`, at the instruction level.

The pass clones the primal function op by op and, right after each op whose result is active
(activity.py), emits that result's tangent from the rule table (derivatives.py): the sum of
partial × operand tangent over the operands that have a tangent. Inactive values get no tangent
and no tangent arithmetic; a tangent that is known to be zero is never materialised except where
a structured op needs a value in a slot (a loop's initial tangent, a branch that yields an
inactive value), where it is a constant 0.

Reverse-mode IR (abstract `ad.push`/`ad.pop`, before passes/tape.py) is differentiated too --
forward over reverse, for Hessians: a tape whose values need tangents (activity.py
`active_tape`) records each float's W tangents next to it and gives them back with it.

Structured control flow carries tangents next to the primal values: `scf.for`/`scf.while` get
extra iter_args for the active carried values only, `scf.if` extra results for its active
results. Calls to other functions call their jvp (generated once per activity mask and width).

Vector mode: with `width` W, every active value has W tangents (one per direction), the
partials are computed once and applied W times. The jvp function takes W tangent arguments per
differentiated argument and returns W tangents per float result, direction-major within each.

Signature of `f.jvp.<mask>[xW]`: the primal arguments, then W tangents for each argument whose
mask bit is set (floats only); results: the primal results, then W tangents for each float
result (0 where the result does not depend on the differentiated arguments).

IR -> IR only. `LLDIFF_EXPLAIN=activity` prints the activity analysis of each function it
differentiates.
"""

import os
import sys

from lldiff.ir import Block, Builder, Func, Op, Region, memref

from .activity import analyze, differentiable
from .derivatives import Emit, custom_rule_of, helper_func, op_kind, op_rule
from .inline import inline_calls
from .rewrite import zeros_like

__all__ = ["jvp_func", "jvp_name"]

_TERMINATORS = ("scf.yield", "scf.condition", "func.return")


def jvp_name(name, active_args, width=1):
    mask = "".join("1" if a else "0" for a in active_args)
    return f"{name}.jvp.{mask}" + (f"x{width}" if width > 1 else "")


def jvp_func(module, name, active_args, width=1):
    """Add the jvp of `module[name]` (differentiating the args whose flag is set) to `module`
    unless it is there already; return its name."""
    func = module[name]
    active_args = tuple(bool(a) and differentiable(t) for a, t in zip(active_args, func.arg_types))
    new_name = jvp_name(name, active_args, width)
    if new_name not in module.funcs:
        if _uses_arrays(module, func):
            # tangents of arrays live in memory: inline so one analysis sees every write
            func = inline_calls(module, func)
        act = analyze(module, func, active_args, memory_outputs=True)
        if os.environ.get("LLDIFF_EXPLAIN", "") in ("activity", "all"):
            sys.stderr.write(act.explain())
        module.add(_Forward(module, func, act, width).build(new_name))
    return new_name


def _uses_arrays(module, func, seen=None):
    seen = set() if seen is None else seen
    if func.name in seen:
        return False
    seen.add(func.name)
    if any(t.is_memref for t in func.arg_types):
        return True
    for op in func.walk():
        if op.name.startswith("lldiff.") and op.name in ("lldiff.alloc", "lldiff.load",
                                                         "lldiff.store", "lldiff.dim"):
            return True
        if op.name == "func.call" and _uses_arrays(module, module[op.attrs["callee"]], seen):
            return True
    return False


def _tangent_hint(v, w, width):
    if not v.hint:
        return None
    h = "d" + v.hint.lstrip(".")
    return h if width == 1 else f"{h}_{w}"


class _Forward:
    def __init__(self, module, func, act, width):
        self.module = module
        self.func = func
        self.act = act
        self.W = width
        self.vmap = {}
        self.tmap = {}  # primal value -> [W tangent values]; absent: no tangent (zero)

    def build(self, new_name):
        f, W = self.func, self.W
        active = [a for a, on in zip(f.args, self.act.active_args) if on]
        arg_types = f.arg_types + [a.type for a in active for _ in range(W)]
        names = f.arg_names + [(f"d{a.hint}" if W == 1 else f"d{a.hint}_{w}")
                               for a in active for w in range(W)]
        results = f.result_types + [t if t.is_float else memref(t.elem, t.rank)
                                    for t in f.result_types if differentiable(t)
                                    for _ in range(W)]
        nf = Func(new_name, arg_types, results, names, loc=f.loc)
        k = len(f.args)
        for a, na in zip(f.args, nf.args):
            self.vmap[a] = na
        for a in active:
            self.tmap[a] = nf.args[k:k + W]
            k += W
        b = Builder(nf.body.block, f.loc)
        for a in f.args:  # an array argument that receives differentiated values internally
            if a not in self.tmap and self.act.active_memory(a):
                self.tmap[a] = [zeros_like(b, self.vmap[a], "tangent") for _ in range(W)]
        self.block(f.body.block, nf.body.block, self.ret)
        return nf

    # --- helpers ---------------------------------------------------------------------------

    def m(self, v):
        return self.vmap[v]

    def t_or_zero(self, v, b):
        t = self.tmap.get(v)
        if t is not None:
            return list(t)
        if v.type.is_memref:  # an array without tangents where one is needed: zeros
            return [zeros_like(b, self.m(v), "tangent") for _ in range(self.W)]
        return [b.const(0.0, v.type)] * self.W

    def slot(self, v):
        """Whether `v` carries tangents through control flow: an active float, or an array
        holding differentiated values (its tangent arrays)."""
        return self.act.active(v) or self.act.active_memory(v)

    def helper(self, name, ftype):
        return helper_func(self.module, name, ftype)

    def block(self, src, dst, finish):
        for op in src.ops:
            b = Builder(dst, op.loc)
            if op.name in _TERMINATORS:
                finish(op, b)
            else:
                self.op(op, b)

    def clone(self, op, b, operands=None, result_types=None, regions=()):
        new = Op(op.name, [self.m(v) for v in op.operands] if operands is None else operands,
                 [r.type for r in op.results] if result_types is None else result_types,
                 op.attrs, regions, loc=op.loc)
        b.insert(new)
        for r, nr in zip(op.results, new.results):
            nr.hint = r.hint
            self.vmap[r] = nr
        return new

    def bind_tangents(self, values, news):
        """Map each value in `values` to the next W values of the iterator `news`."""
        for v in values:
            ts = [next(news) for _ in range(self.W)]
            for w, t in enumerate(ts):
                t.hint = _tangent_hint(v, w, self.W)
            self.tmap[v] = ts

    # --- ops -------------------------------------------------------------------------------

    def op(self, op, b):
        n = op.name
        if n == "scf.if":
            return self.scf_if(op, b)
        if n == "scf.for":
            return self.scf_for(op, b)
        if n == "scf.while":
            return self.scf_while(op, b)
        if n == "func.call" and custom_rule_of(op) is None:
            return self.call(op, b)
        if n == "ad.push" and op.operands[0].type.is_float and \
                self.act.active_tape(op.attrs["tape"]):
            # forward over reverse: the tangents go on the tape first, the value last, so
            # the pop of the value comes first and its tangents follow (last in, first out)
            for t in self.t_or_zero(op.operands[0], b):
                b.create("ad.push", [t], dict(op.attrs), result_types=[])
            self.clone(op, b)
            return
        new = self.clone(op, b)
        if n == "ad.pop" and new.result.type.is_float and self.act.active_tape(op.attrs["tape"]):
            ts = [b.create("ad.pop", [], dict(op.attrs), result_types=[new.result.type]).result
                  for _ in range(self.W)]
            self.tmap[op.result] = ts[::-1]
            return
        if op_kind(op) == "rule" and any(self.act.active(r) for r in op.results):
            self.rule(op, new, b)
        elif n == "lldiff.alloc" and self.act.active_memory(op.result):
            self.tmap[op.result] = [zeros_like(b, new.result, "tangent") for _ in range(self.W)]
        elif n == "lldiff.load" and op.operands[0] in self.tmap and self.act.active(op.result):
            idx = new.operands[1:]
            self.tmap[op.result] = [b.value("lldiff.load", t, *idx, shadow=True)
                                    for t in self.tmap[op.operands[0]]]
        elif n == "lldiff.store" and op.operands[1] in self.tmap:
            v, idx = op.operands[0], new.operands[2:]
            for t, dv in zip(self.tmap[op.operands[1]], self.t_or_zero(v, b)):
                b.create("lldiff.store", [dv, t] + list(idx), {"shadow": True})

    def rule(self, op, new, b):
        rule = op_rule(op)
        x = new.operands
        y = new.result
        dx = [self.tmap.get(v) if rule.has_partial(i) else None
              for i, v in enumerate(op.operands)]
        if all(d is None for d in dx):
            return
        e = Emit(b, y.type, lambda name: self.helper(name, y.type))
        if rule.jvp is not None:
            dy = [rule.jvp(e, x, y, [d[w] if d else None for d in dx]) for w in range(self.W)]
        else:
            partials = rule.partials(e, x, y)
            dy = []
            for w in range(self.W):
                acc = None
                for p, d in zip(partials, dx):
                    if d is None or p is None:
                        continue
                    acc = _accumulate(e, acc, p, d[w])
                dy.append(acc)
        for w, t in enumerate(dy):
            if t.hint is None and getattr(t, "op", None) is not None and t.op.parent is b.block:
                t.hint = _tangent_hint(op.result, w, self.W)
        self.tmap[op.result] = dy

    def ret(self, op, b):
        outs = [self.m(v) for v in op.operands]
        for v in op.operands:
            if v.type.is_float:
                outs += self.t_or_zero(v, b)
            elif differentiable(v.type):  # a returned array: its tangent array
                outs += self.tmap.get(v) or [zeros_like(b, self.m(v), "tangent")
                                             for _ in range(self.W)]
        b.insert(Op("func.return", outs, [], loc=op.loc))

    def scf_if(self, op, b):
        slots = [r for r in op.results if self.slot(r)]
        idx = [op.results.index(r) for r in slots]
        types = [r.type for r in op.results] + [r.type for r in slots for _ in range(self.W)]
        regions = []
        for region in op.regions:
            if not region.blocks:
                regions.append(Region())
                continue
            nr, nb = Builder().block_region()

            def finish(y, yb):
                outs = [self.m(v) for v in y.operands]
                for i in idx:
                    outs += self.t_or_zero(y.operands[i], yb)
                yb.insert(Op("scf.yield", outs, [], loc=y.loc))
            self.block(region.block, nb, finish)
            regions.append(nr)
        new = self.clone(op, b, result_types=types, regions=regions)
        self.bind_tangents(slots, iter(new.results[len(op.results):]))

    def scf_for(self, op, b):
        lb, ub, step, *inits = op.operands
        body = op.regions[0].block
        idx = [i for i in range(len(inits))
               if self.slot(body.args[1 + i]) or self.slot(op.results[i])]
        operands = [self.m(v) for v in op.operands]
        for i in idx:
            operands += self.t_or_zero(inits[i], b)
        types = [a.type for a in body.args]
        types += [body.args[1 + i].type for i in idx for _ in range(self.W)]
        nb = Block(types, [a.hint for a in body.args] + [None] * (len(types) - len(body.args)))
        for a, na in zip(body.args, nb.args):
            self.vmap[a] = na
        self.bind_tangents([body.args[1 + i] for i in idx], iter(nb.args[len(body.args):]))

        def finish(y, yb):
            outs = [self.m(v) for v in y.operands]
            for i in idx:
                outs += self.t_or_zero(y.operands[i], yb)
            yb.insert(Op("scf.yield", outs, [], loc=y.loc))
        self.block(body, nb, finish)
        rtypes = [r.type for r in op.results] + [op.results[i].type for i in idx
                                                   for _ in range(self.W)]
        new = self.clone(op, b, operands=operands, result_types=rtypes, regions=[Region([nb])])
        self.bind_tangents([op.results[i] for i in idx], iter(new.results[len(op.results):]))

    def scf_while(self, op, b):
        act = self.slot
        before, after = op.regions[0].block, op.regions[1].block
        cond = before.terminator
        fwd = cond.operands[1:]
        sb = [i for i, a in enumerate(before.args) if act(a)]
        sf = [j for j in range(len(fwd)) if act(after.args[j]) or act(op.results[j])]
        if len(before.args) == len(fwd):  # the frontend's shape: keep slots aligned
            sb = sf = sorted(set(sb) | set(sf))
        W = self.W

        def new_block(blk, slots):
            types = [a.type for a in blk.args] + [blk.args[i].type for i in slots for _ in range(W)]
            nb = Block(types, [a.hint for a in blk.args] + [None] * (len(types) - len(blk.args)))
            for a, na in zip(blk.args, nb.args):
                self.vmap[a] = na
            self.bind_tangents([blk.args[i] for i in slots], iter(nb.args[len(blk.args):]))
            return nb

        operands = [self.m(v) for v in op.operands]
        for i in sb:
            operands += self.t_or_zero(op.operands[i], b)
        nbefore = new_block(before, sb)

        def finish_before(c, cb):
            outs = [self.m(v) for v in c.operands]
            for j in sf:
                outs += self.t_or_zero(fwd[j], cb)
            cb.insert(Op("scf.condition", outs, [], loc=c.loc))
        self.block(before, nbefore, finish_before)
        nafter = new_block(after, sf)

        def finish_after(y, yb):
            outs = [self.m(v) for v in y.operands]
            for i in sb:
                outs += self.t_or_zero(y.operands[i], yb)
            yb.insert(Op("scf.yield", outs, [], loc=y.loc))
        self.block(after, nafter, finish_after)
        rtypes = [r.type for r in op.results] + [op.results[j].type for j in sf for _ in range(W)]
        new = self.clone(op, b, operands=operands, result_types=rtypes,
                         regions=[Region([nbefore]), Region([nafter])])
        self.bind_tangents([op.results[j] for j in sf], iter(new.results[len(op.results):]))

    def call(self, op, b):
        mask = tuple(v in self.tmap for v in op.operands)
        if not any(mask) or not any(self.act.active(r) for r in op.results):
            self.clone(op, b)
            return
        callee = self.module[op.attrs["callee"]]
        name = jvp_func(self.module, callee.name, mask, self.W)
        operands = [self.m(v) for v in op.operands]
        for v, on in zip(op.operands, mask):
            if on:
                operands += self.tmap[v]
        floats = [r for r in op.results if r.type.is_float]
        rtypes = [r.type for r in op.results] + [r.type for r in floats for _ in range(self.W)]
        new = Op("func.call", operands, rtypes, {"callee": name}, loc=op.loc)
        b.insert(new)
        for r, nr in zip(op.results, new.results):
            nr.hint = r.hint
            self.vmap[r] = nr
        self.bind_tangents(floats, iter(new.results[len(op.results):]))


def _accumulate(e, acc, p, d):
    """acc + p*d, with p == ±1.0 applied without a multiply and a product added to a sum as
    one fused multiply-add (one rounding, and one latency instead of two on the chain that
    carries a tangent through a loop)."""
    if isinstance(p, float) and p == 1.0:
        term, negate = d, False
    elif isinstance(p, float) and p == -1.0:
        term, negate = d, True
    elif acc is not None:
        return e.op("math.fma", p, d, acc)
    else:
        term, negate = e.mul(p, d), False
    if acc is None:
        return e.neg(term) if negate else term
    return e.sub(acc, term) if negate else e.add(acc, term)
