"""canonicalize: constant folding, common subexpressions, dead-code elimination and
structured-CF cleanup.

Folds pure ops on constants with the ops' reference semantics (so folding can never disagree
with the interpreter), drops `lldiff.raise_if` on a constant false, inlines `scf.if` on a
constant condition, replaces a pure op by an identical one that dominates it (an array load
only while no store or call may have changed memory in between), removes unused `scf.if`
results and dead loop-carried values, and deletes unused pure ops. IR -> IR only.
"""

import struct

from lldiff.ir import I1, I64, OPS
from lldiff.ir.ops import wrap_i64

from .rewrite import all_blocks, constant_op, make_const, substitute, use_counts

__all__ = ["canonicalize"]


def canonicalize(module):
    for func in module:
        for _ in range(20):
            changed = _fold(func)
            changed |= _cse(func)
            changed |= _dce(func)
            if not changed:
                break
    return module


def _cse(func):
    mapping = {}
    changed = _cse_block(func.body.block, {}, mapping)
    substitute(func, mapping)
    return changed


def _writes_memory(op):
    return any(o.name in ("lldiff.store", "func.call") for o in op.walk())


def _without_loads(table):
    return {k: v for k, v in table.items() if k[0] != "lldiff.load"}


def _cse_block(block, outer, mapping):
    """CSE in `block`, seeing the ops of the enclosing blocks (`outer`: key -> op)."""
    table = dict(outer)
    changed = False
    keep = []
    for op in block.ops:
        op.operands = [mapping.get(v, v) for v in op.operands]
        if op.regions:
            # a region that writes memory may run again after its own writes: no loads from
            # outside can stand for loads inside it
            inner = _without_loads(table) if _writes_memory(op) else table
            for region in op.regions:
                for b in region.blocks:
                    changed |= _cse_block(b, inner, mapping)
        if _writes_memory(op):
            table = _without_loads(table)
        key = _cse_key(op)
        if key is not None:
            prev = table.get(key)
            if prev is not None:
                mapping[op.results[0]] = prev.results[0]
                changed = True
                continue
            table[key] = op
        keep.append(op)
    block.ops = keep
    return changed


def _cse_key(op):
    od = OPS.get(op.name)
    if od is None or not od.pure or op.regions or len(op.results) != 1 or \
            op.name == "func.call":
        return None
    attrs = tuple(sorted((k, struct.pack("<d", v) if isinstance(v, float) else v)
                         for k, v in op.attrs.items()))
    return (op.name, tuple(op.operands), attrs, op.results[0].type)


def _fold(func):
    mapping = {}
    changed = _fold_block(func.body.block, mapping)
    substitute(func, mapping)
    return changed


def _fold_block(block, mapping):
    """Fold `block` in program order, inner regions before the op that holds them, so ops a
    constant `scf.if` hoists into `block` have been folded already and are visited once."""
    changed = False
    new_ops = []
    for op in block.ops:
        op.operands = [mapping.get(v, v) for v in op.operands]
        for region in op.regions:
            for inner in region.blocks:
                changed |= _fold_block(inner, mapping)
        folded = _fold_op(op, mapping)
        if folded is None:
            new_ops.append(op)
            continue
        changed = True
        for o in folded:
            o.parent = block
        new_ops.extend(folded)
    block.ops = new_ops
    return changed


def _fold_op(op, mapping):
    """Return replacement ops (possibly empty) when `op` folds, else None."""
    n = op.name
    if n == "lldiff.raise_if":
        c = constant_op(op.operands[0])
        return [] if c is not None and not c.attrs["value"] else None
    if n == "scf.if":
        c = constant_op(op.operands[0])
        if c is None:
            return None
        region = op.regions[0] if c.attrs["value"] else op.regions[1]
        if not region.blocks:
            return []
        ops = region.block.ops
        yield_op = ops[-1]
        for r, v in zip(op.results, yield_op.operands):
            mapping[r] = mapping.get(v, v)
        return ops[:-1]
    if n == "arith.select":
        c = constant_op(op.operands[0])
        if c is not None:
            mapping[op.result] = op.operands[1] if c.attrs["value"] else op.operands[2]
            return []
        if op.operands[1] is op.operands[2]:
            mapping[op.result] = op.operands[1]
            return []
        return None
    od = OPS.get(n)
    if od is None or od.eval is None or not od.pure or op.regions or not op.results \
            or n == "arith.constant":
        return None
    consts = [constant_op(v) for v in op.operands]
    if any(c is None for c in consts):
        return None
    try:
        value = od.eval(op.attrs, *[c.attrs["value"] for c in consts])
    except (ArithmeticError, ValueError, OverflowError):
        return None  # leave it: the compiled code raises at run time
    t = op.result.type
    if t is I1:
        value = bool(value)
    elif t is I64:
        value = wrap_i64(value)
    else:
        value = float(value)
    new = make_const(value, t, op.loc)
    mapping[op.result] = new.result
    new.result.hint = op.result.hint
    return [new]


def _has_effects(op):
    for inner in op.walk():
        if inner.name == "func.call" or not OPS[inner.name].pure and inner.name not in (
                "scf.yield", "scf.condition"):
            return True
    return False


def _dce(func):
    changed = False
    while True:
        uses = use_counts(func)
        removed = False
        for block in list(all_blocks(func)):
            keep = []
            for op in block.ops:
                if op.name in ("scf.yield", "scf.condition", "func.return"):
                    keep.append(op)
                    continue
                if op.name == "scf.if" and op.results:
                    removed |= _trim_if(op, uses)
                if op.name in ("scf.for", "scf.while") and op.results:
                    removed |= _trim_loop(op, uses)
                dead = all(uses.get(r, 0) == 0 for r in op.results)
                if dead and not _has_effects(op):
                    if op.name == "scf.if" and not op.results and any(
                            r.blocks and len(r.block.ops) > 1 for r in op.regions):
                        keep.append(op)
                        continue
                    removed = True
                    continue
                keep.append(op)
            block.ops = keep
        if not removed:
            return changed
        changed = True


def _trim_if(op, uses):
    dead = [i for i, r in enumerate(op.results) if uses.get(r, 0) == 0]
    if not dead:
        return False
    keep = [i for i in range(len(op.results)) if i not in dead]
    for region in op.regions:
        y = region.block.ops[-1]
        y.operands = [y.operands[i] for i in keep]
    op.results = [op.results[i] for i in keep]
    _renumber(op)
    return True


def _renumber(op):
    for j, r in enumerate(op.results):
        r.index = j


def _trim_loop(op, uses):
    """Drop carried values whose result is unused and whose block args only feed themselves."""
    if op.name == "scf.for":
        body = op.regions[0].block
        y = body.ops[-1]
        inner = use_counts(body)
        dead = []
        for i, r in enumerate(op.results):
            arg = body.args[i + 1]
            self_feed = y.operands[i] is arg
            arg_uses = inner.get(arg, 0) - (1 if self_feed else 0)
            if uses.get(r, 0) == 0 and arg_uses == 0:
                dead.append(i)
        if not dead:
            return False
        keep = [i for i in range(len(op.results)) if i not in dead]
        op.operands = op.operands[:3] + [op.operands[3 + i] for i in keep]
        y.operands = [y.operands[i] for i in keep]
        body.args = [body.args[0]] + [body.args[1 + i] for i in keep]
        for j, a in enumerate(body.args):
            a.index = j
        op.results = [op.results[i] for i in keep]
        _renumber(op)
        return True
    before, after = op.regions[0].block, op.regions[1].block
    cond, yld = before.ops[-1], after.ops[-1]
    in_before, in_after = use_counts(before), use_counts(after)
    dead = []
    for i, r in enumerate(op.results):
        if i >= len(before.args):
            break
        barg, aarg = before.args[i], after.args[i]
        # before-arg i passes straight to condition slot i; after-arg i only to yield slot i
        if cond.operands[1 + i] is not barg or yld.operands[i] is not aarg:
            continue
        if in_before.get(barg, 0) != 1 or in_after.get(aarg, 0) != 1 or uses.get(r, 0):
            continue
        dead.append(i)
    if not dead:
        return False
    keep = [i for i in range(len(op.results)) if i not in dead]
    op.operands = [op.operands[i] for i in keep]
    cond.operands = [cond.operands[0]] + [cond.operands[1 + i] for i in keep]
    yld.operands = [yld.operands[i] for i in keep]
    before.args = [before.args[i] for i in keep]
    after.args = [after.args[i] for i in keep]
    for blk in (before, after):
        for j, a in enumerate(blk.args):
            a.index = j
    op.results = [op.results[i] for i in keep]
    _renumber(op)
    return True
