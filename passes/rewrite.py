"""Small IR rewrite helpers shared by passes: use counts, operand substitution, op removal.

IR -> IR only; imports `lldiff.ir` and nothing else.
"""

from lldiff.ir import I64, Block, Builder, Op, Region

__all__ = ["use_counts", "substitute", "all_blocks", "make_const", "constant_op", "clone_op",
           "trip_count", "zeros_like", "if_op"]


def all_blocks(root):
    """Every block in `root` (a Func or a Block) and nested in it, outer before inner."""
    stack = [root.body.block if hasattr(root, "body") else root]
    while stack:
        block = stack.pop()
        yield block
        for op in block.ops:
            for region in op.regions:
                stack.extend(region.blocks)


def use_counts(root):
    """How often each value is used as an operand in `root` (a Func or a Block)."""
    counts = {}
    for block in all_blocks(root):
        for op in block.ops:
            for v in op.operands:
                counts[v] = counts.get(v, 0) + 1
    return counts


def substitute(func, mapping):
    """Replace every use of a key of `mapping` by its value (following chains)."""
    if not mapping:
        return

    def final(v):
        while v in mapping:
            v = mapping[v]
        return v

    for block in all_blocks(func):
        for op in block.ops:
            op.operands = [final(v) if v in mapping else v for v in op.operands]


def make_const(value, type, loc=None):
    op = Op("arith.constant", [], [type], {"value": value, "type": type}, loc=loc)
    return op


def constant_op(v):
    """The `arith.constant` op defining value `v`, or None."""
    op = getattr(v, "op", None)
    return op if op is not None and op.name == "arith.constant" else None


def clone_op(op, vmap):
    """A deep copy of `op` (regions included) with operands looked up in `vmap` (values
    defined outside `op` that are missing from it stay as they are); records its results and
    everything defined inside it in `vmap`."""
    regions = []
    for region in op.regions:
        blocks = []
        for block in region.blocks:
            nb = Block([a.type for a in block.args], [a.hint for a in block.args])
            vmap.update(zip(block.args, nb.args))
            for inner in block.ops:
                nb.append(clone_op(inner, vmap))
            blocks.append(nb)
        regions.append(Region(blocks))
    new = Op(op.name, [vmap.get(v, v) for v in op.operands], [r.type for r in op.results],
             op.attrs, regions, loc=op.loc)
    for r, nr in zip(op.results, new.results):
        nr.hint = r.hint
        vmap[r] = nr
    return new


def trip_count(b, lb, ub, step):
    """max(0, ceil((ub - lb) / step)) for step > 0: how often `scf.for` runs its body."""
    span = b.value("arith.subi", ub, lb)
    n = b.value("arith.floordivsi", b.value("arith.addi", span,
                                            b.value("arith.subi", step, b.const(1, I64))), step)
    zero = b.const(0, I64)
    return b.value("arith.select", b.value("arith.cmpi", n, zero, pred="sgt"), n, zero, hint="n")


def zeros_like(b, m, hint=None):
    """A new zero-filled array shaped like memref value `m`, of `m`'s type (a shadow or
    tangent array no caller gave; C order, which a strided type also describes)."""
    t = m.type
    dims = [b.value("lldiff.dim", m, axis=k) for k in range(t.rank)]
    return b.create("lldiff.alloc", dims, {"type": t, "fill": 0.0}, hint=hint).result


def if_op(b, cond, types, then, else_):
    """`scf.if` whose branches are built by then(builder) / else_(builder) -> yielded values."""
    regions = []
    for fill in (then, else_):
        region, blk = Builder().block_region()
        bb = Builder(blk, b.loc)
        bb.insert(Op("scf.yield", list(fill(bb)), [], loc=b.loc))
        regions.append(region)
    return list(b.insert(Op("scf.if", [cond], list(types), {}, regions, loc=b.loc)).results)
