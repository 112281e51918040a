"""Inlining: a copy of a function with every `func.call` replaced by the callee's body.

Reverse mode differentiates calls by inlining them first (passes/vjp.py): the callee's loops
then share the caller's tapes and the cached-value analysis sees across the call, which is
what Enzyme gets from inlining small functions. The cost is code size, bounded by
`MAX_DEPTH` nested calls (the frontend rejects recursion). Calls to functions with a user
rule (`custom_jvp`/`custom_vjp`) stay calls: the AD passes differentiate them by the rule.

The frontend lowers early returns to structured control flow, so every function body ends in
its only `func.return`: the inlined body's returned values replace the call's results.

IR -> IR only; the module is not modified.
"""

from lldiff.ir import Func

from .derivatives import custom_rule_of
from .rewrite import clone_op

__all__ = ["inline_calls", "MAX_DEPTH"]

MAX_DEPTH = 16


def inline_calls(module, func):
    """A new Func (same name and signature) equal to `func` with all calls inlined."""
    new = Func(func.name, func.arg_types, func.result_types, func.arg_names, loc=func.loc)
    vmap = dict(zip(func.args, new.args))
    _inline_block(module, func.body.block, new.body.block, vmap, 0)
    return new


def _inline_block(module, src, dst, vmap, depth):
    for op in src.ops:
        if op.name == "func.call" and custom_rule_of(op) is None:
            if depth >= MAX_DEPTH:
                raise NotImplementedError(f"calls nested deeper than {MAX_DEPTH} levels")
            callee = module[op.attrs["callee"]]
            inner = dict(zip(callee.args, (vmap.get(v, v) for v in op.operands)))
            ret = _inline_block(module, callee.body.block, dst, inner, depth + 1)
            for r, v in zip(op.results, ret.operands):
                vmap[r] = inner.get(v, v)
            continue
        if op.name == "func.return" and depth > 0:
            return op
        if any(inner.name == "func.call" and custom_rule_of(inner) is None
               for inner in op.walk()):
            new = clone_op(op, vmap)
            _inline_regions(module, op, new, vmap, depth)
            dst.append(new)
            continue
        dst.append(clone_op(op, vmap))
    return src.ops[-1]


def _inline_regions(module, op, new, vmap, depth):
    """Rebuild the regions of the clone `new` of `op`, inlining the calls inside them."""
    for region, nregion in zip(op.regions, new.regions):
        for block, nb in zip(region.blocks, nregion.blocks):
            vmap.update(zip(block.args, nb.args))
            nb.ops = []
            _inline_block(module, block, nb, vmap, depth)
