"""Reverse mode: `f(x) -> y` becomes `f.vjp(x, ybar) -> (y, xbar)`, at the instruction level.

Work in progress (issue 4): straight-line code and `scf.if` are differentiated; loops and calls
with active operands raise `NotImplementedError` until the tape (`ad.push`/`ad.pop`, tape.py)
and the cached-value analysis (cache.py) land. The public API does not expose it yet.

The function is an augmented forward sweep followed by the reverse sweep in the same body:

* Forward sweep: a clone of the primal. An `scf.if` whose branches hold values the reverse
  sweep reads (the `reads` of derivatives.py for each active op, and the conditions of nested
  ifs) gets extra results that yield them out (a dummy 0/false from the other branch), so the
  reverse sweep finds them at the top level: SSA's way of recording what a branch computed.
* Reverse sweep: ops in reverse order; each active op with an adjoint adds partial × adjoint
  to its active operands' adjoints (fused multiply-add once an adjoint exists), or uses the
  rule's specialised `vjp`. An `scf.if` becomes an `scf.if` on the same condition whose
  branches run their ops' reverse and yield the adjoints of the outer values they touch.

Signature of `f.vjp.<mask>`: the primal arguments, then one adjoint seed per float result;
results: the primal results, then the adjoint of each argument whose mask bit is set.

IR -> IR only.
"""

from lldiff.ir import I1, Builder, Func, Op, Region

from .activity import analyze
from .derivatives import RULES, Emit, classify, helper_func

__all__ = ["vjp_func", "vjp_name"]


def vjp_name(name, active_args):
    return f"{name}.vjp." + "".join("1" if a else "0" for a in active_args)


def vjp_func(module, name, active_args):
    """Add the vjp of `module[name]` to `module` unless present; return its name."""
    func = module[name]
    active_args = tuple(bool(a) and t.is_float for a, t in zip(active_args, func.arg_types))
    new_name = vjp_name(name, active_args)
    if new_name not in module.funcs:
        act = analyze(module, func, active_args)
        module.add(_Reverse(module, func, act).build(new_name))
    return new_name


def _defined_in(region):
    out = set()
    for block in region.blocks:
        out.update(block.args)
        for op in block.ops:
            for inner in op.walk():
                out.update(inner.results)
                for r in inner.regions:
                    for blk in r.blocks:
                        out.update(blk.args)
    return out


class _Reverse:
    def __init__(self, module, func, act):
        self.module = module
        self.func = func
        self.act = act
        self.vmap = {}

    def build(self, new_name):
        f = self.func
        seeds = [t for t in f.result_types if t.is_float]
        active = [a for a, on in zip(f.args, self.act.active_args) if on]
        names = f.arg_names + [f"ybar{i}" if len(seeds) > 1 else "ybar"
                               for i in range(len(seeds))]
        nf = Func(new_name, f.arg_types + seeds, f.result_types + [a.type for a in active],
                  names, loc=f.loc)
        for a, na in zip(f.args, nf.args):
            self.vmap[a] = na
        b = Builder(nf.body.block, f.loc)
        body = f.body.block
        for op in body.ops[:-1]:
            self.forward(op, Builder(nf.body.block, op.loc))
        ret = body.terminator
        adj = {}
        seed_args = iter(nf.args[len(f.args):])
        for v in ret.operands:
            if v.type.is_float:
                s = next(seed_args)
                if self.act.active(v):
                    self.add(adj, v, s, b)
        self.reverse_ops(body.ops[:-1], adj, nf.body.block)
        outs = [self.vmap[v] for v in ret.operands]
        for a in active:
            outs.append(adj[a] if a in adj else b.const(0.0, a.type))
        b.insert(Op("func.return", outs, [], loc=ret.loc))
        return nf

    # --- forward sweep ---------------------------------------------------------------------

    def forward(self, op, b):
        n = op.name
        if n in ("scf.for", "scf.while"):
            if any(self.act.active(r) or r in self.act.varied for r in op.results) or \
                    any(self.act.active(v) for inner in op.walk() for v in inner.results):
                raise NotImplementedError(f"reverse mode through {n} is not implemented yet")
        if n == "func.call" and any(self.act.active(r) for r in op.results):
            raise NotImplementedError("reverse mode through calls is not implemented yet")
        if n == "scf.if":
            return self.forward_if(op, b)
        new = Op(n, [self.vmap[v] for v in op.operands], [r.type for r in op.results],
                 op.attrs, [self.clone_region(r) for r in op.regions], loc=op.loc)
        b.insert(new)
        for r, nr in zip(op.results, new.results):
            nr.hint = r.hint
            self.vmap[r] = nr

    def clone_region(self, region):
        """A plain clone (no extra yields) of an inactive region."""
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

    def needed(self, region):
        """Values defined inside `region` that the reverse sweep of its ops reads."""
        inside = _defined_in(region)
        out = []
        for block in region.blocks:
            for top in block.ops:
                for op in top.walk():
                    for v in self._reads(op):
                        if v in inside and v not in out:
                            out.append(v)
        return out

    def _reads(self, op):
        if op.name == "scf.if" and self._if_active(op):
            return [op.operands[0]]
        if classify(op.name) != "rule" or not any(self.act.active(r) for r in op.results):
            return []
        rule = RULES[op.name]
        names = set()  # all partials are emitted together, so all of their reads
        for i, v in enumerate(op.operands):
            if rule.has_partial(i):
                names |= rule.reads[i]
        vals = [op.operands[int(k[1:])] for k in sorted(names) if k.startswith("x")]
        if "y" in names:
            vals.append(op.result)
        return vals

    def _if_active(self, op):
        return any(self.act.active(v) for inner in op.walk() for v in inner.results) or \
            any(self.act.active(v) for r in op.regions for blk in r.blocks
                for v in blk.terminator.operands)

    def forward_if(self, op, b):
        need = [self.needed(r) if r.blocks else [] for r in op.regions]
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
            yb.insert(Op("scf.yield", outs, [], loc=y.loc))
            regions.append(nr)
        extra = [v.type for vals in need for v in vals]
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
                self.vmap[v] = next(rest)  # the reverse sweep reads it here

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
            if classify(op.name) != "rule":
                continue
            r = op.results[0]
            if r not in adj:
                continue
            rule = RULES[op.name]
            need = [rule.has_partial(i) and self.act.active(v) for i, v in enumerate(op.operands)]
            if not any(need):
                continue
            x = [self.vmap[v] for v in op.operands]
            y = self.vmap[r]
            ybar = adj[r]
            e = Emit(b, r.type, lambda h: self.helper(h, r.type))
            if rule.vjp is not None:
                bars = rule.vjp(e, x, y, ybar, need)
                for v, bar, on in zip(op.operands, bars, need):
                    if on and bar is not None:
                        self.add(adj, v, bar, b)
            else:
                partials = rule.partials(e, x, y)
                for v, p, on in zip(op.operands, partials, need):
                    if on and p is not None:
                        self.add(adj, v, ybar, b, partial=p)

    def reverse_if(self, op, adj, b):
        seeds = [(i, r) for i, r in enumerate(op.results) if r in adj]
        inside = [_defined_in(r) for r in op.regions]
        outer = []
        for k, region in enumerate(op.regions):
            if not region.blocks:
                continue
            for top in region.block.ops:
                for inner in top.walk():
                    for v in inner.operands:
                        if self.act.active(v) and v not in inside[k] and v not in outer:
                            outer.append(v)
        if not seeds or not outer:
            return
        regions = []
        for k, region in enumerate(op.regions):
            nr, nb = Builder().block_region()
            local = {}
            yb = Builder(nb, op.loc)
            if region.blocks:
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

    def helper(self, name, ftype):
        return helper_func(self.module, name, ftype)


def _dummy(b, t):
    return b.const(False if t is I1 else 0.0 if t.is_float else 0, t)
