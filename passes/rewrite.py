"""Small IR rewrite helpers shared by passes: use counts, operand substitution, op removal.

IR -> IR only; imports `lldiff.ir` and nothing else.
"""

from lldiff.ir import Op

__all__ = ["use_counts", "substitute", "all_blocks", "make_const"]


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
