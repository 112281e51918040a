"""Builds ops at an insertion point, inferring result types from each op's type rule.

Owns insertion (a current block and source location) and nothing else: no op knowledge
beyond looking up the `OpDef` table.
"""

from .core import Block, Op, Region
from .ops import OPS
from .types import F32, F64, I1, I64

__all__ = ["Builder"]


class Builder:
    __slots__ = ("block", "loc")

    def __init__(self, block=None, loc=None):
        self.block = block
        self.loc = loc

    def insert(self, op):
        if op.loc is None:
            op.loc = self.loc
        return self.block.append(op)

    def create(self, name, operands, attrs=None, result_types=None, regions=(), hint=None):
        if result_types is None:
            result_types = OPS[name].type_rule([v.type for v in operands], attrs or {})
        op = self.insert(Op(name, operands, result_types, attrs, regions))
        if hint is not None:
            for r in op.results:
                r.hint = hint
        return op

    def value(self, name, *operands, hint=None, **attrs):
        """Create a single-result op and return its result."""
        return self.create(name, list(operands), attrs, hint=hint).result

    def const(self, value, type):
        if type is I1:
            value = bool(value)
        elif type is I64:
            value = int(value)
        elif type in (F64, F32):
            value = float(value)
        return self.create("arith.constant", [], {"value": value, "type": type}).result

    def cast(self, v, to):
        """Convert `v` to type `to` along the bool < int < float order (no narrowing)."""
        t = v.type
        if t is to:
            return v
        op = getattr(v, "op", None)
        if op is not None and op.name == "arith.constant" and (t.is_int and to.is_float or
                                                             t is I1 and to is I64):
            return self.const(op.attrs["value"], to)
        if t is I1 and to is I64:
            return self.value("arith.extui", v, to=to)
        if t is I1 and to.is_float:
            return self.value("arith.uitofp", v, to=to)
        if t is I64 and to.is_float:
            return self.value("arith.sitofp", v, to=to)
        raise TypeError(f"cannot convert {t} to {to}")

    def block_region(self, arg_types=(), hints=None):
        """A fresh single-block region and its block."""
        block = Block(arg_types, hints)
        return Region([block]), block

    def at(self, block):
        """A builder for `block` sharing this builder's location."""
        return Builder(block, self.loc)
