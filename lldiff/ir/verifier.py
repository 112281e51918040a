"""Checks IR invariants: types follow each op's rule, uses are dominated, regions are shaped.

Raises `VerificationError` naming the function and op. Passes run it in tests after every
transformation. Must not modify the IR.
"""

from .ops import OPS
from .types import I1, I64

__all__ = ["verify", "VerificationError"]


class VerificationError(Exception):
    pass


def verify(module):
    for f in module:
        _FuncVerifier(module, f).run()
    return module


class _FuncVerifier:
    def __init__(self, module, func):
        self.module = module
        self.func = func

    def fail(self, op, msg):
        where = f" ({op.loc})" if op is not None and op.loc else ""
        name = op.name if op is not None else "func"
        raise VerificationError(f"@{self.func.name}: {name}: {msg}{where}")

    def run(self):
        block = self.func.body.block
        term = self.block(block, set(), "func.return")
        types = [v.type for v in term.operands]
        if types != self.func.result_types:
            self.fail(term, f"returns {types}, function declares {self.func.result_types}")

    def block(self, block, outer, terminator):
        """Verify `block` whose visible values are `outer`; return its terminator."""
        scope = set(outer)
        scope.update(block.args)
        if not block.ops or block.ops[-1].name != terminator:
            self.fail(block.ops[-1] if block.ops else None, f"block must end with {terminator}")
        for i, op in enumerate(block.ops):
            if op.parent is not block:
                self.fail(op, "op's parent is not its block")
            for v in op.operands:
                if v not in scope:
                    self.fail(op, f"operand {v!r} does not dominate its use")
            if op.name in ("scf.yield", "scf.condition", "func.return") and i != len(block.ops) - 1:
                self.fail(op, "terminator in the middle of a block")
            self.op(op, scope)
            scope.update(op.results)
        return block.ops[-1]

    def op(self, op, scope):
        n = op.name
        od = OPS.get(n)
        if od is None:
            self.fail(op, "unknown op")
        if od.type_rule is not None:
            try:
                want = od.type_rule([v.type for v in op.operands], op.attrs)
            except (TypeError, KeyError, ValueError) as e:
                self.fail(op, str(e))
            got = [r.type for r in op.results]
            if got != want:
                self.fail(op, f"result types {got}, expected {want}")
            if op.regions:
                self.fail(op, "unexpected regions")
            return
        check = getattr(self, "op_" + n.replace(".", "_"), None)
        if check is not None:
            check(op, scope)

    def _yields(self, op, block, scope, types, terminator="scf.yield"):
        term = self.block(block, scope, terminator)
        got = [v.type for v in term.operands]
        if terminator == "scf.condition":
            if not got or got[0] is not I1:
                self.fail(term, "scf.condition needs an i1 first operand")
            got = got[1:]
        if got != list(types):
            self.fail(term, f"yields {got}, expected {list(types)}")

    def op_scf_if(self, op, scope):
        if len(op.operands) != 1 or op.operands[0].type is not I1 or len(op.regions) != 2:
            self.fail(op, "scf.if needs one i1 operand and two regions")
        rt = [r.type for r in op.results]
        for region in op.regions:
            if not region.blocks:
                if rt:
                    self.fail(op, "scf.if with results needs an else region")
                continue
            if region.block.args:
                self.fail(op, "scf.if regions take no arguments")
            self._yields(op, region.block, scope, rt)

    def op_scf_for(self, op, scope):
        lb, ub, step, *inits = op.operands
        if not (lb.type is ub.type is step.type is I64):
            self.fail(op, "scf.for bounds must be i64")
        body = op.regions[0].block
        want = [I64] + [v.type for v in inits]
        if [a.type for a in body.args] != want:
            self.fail(op, f"body arguments {[a.type for a in body.args]}, expected {want}")
        if [r.type for r in op.results] != want[1:]:
            self.fail(op, "results must match iter_args")
        self._yields(op, body, scope, want[1:])

    def op_scf_while(self, op, scope):
        before, after = (r.block for r in op.regions)
        init = [v.type for v in op.operands]
        res = [r.type for r in op.results]
        if [a.type for a in before.args] != init:
            self.fail(op, "before-region arguments must match the operands")
        if [a.type for a in after.args] != res:
            self.fail(op, "after-region arguments must match the results")
        self._yields(op, before, scope, res, "scf.condition")
        self._yields(op, after, scope, init)

    def op_func_call(self, op, scope):
        callee = self.module.funcs.get(op.attrs.get("callee"))
        if callee is None:
            self.fail(op, f"unknown callee @{op.attrs.get('callee')}")
        if [v.type for v in op.operands] != callee.arg_types:
            self.fail(op, f"arguments {[v.type for v in op.operands]} != {callee.arg_types}")
        if [r.type for r in op.results] != callee.result_types:
            self.fail(op, "result types do not match the callee")

    def op_scf_yield(self, op, scope):
        if op.parent is None or op.parent.parent is None or op.parent.parent.parent is None:
            self.fail(op, "scf.yield outside a region op")

    op_scf_condition = op_scf_yield
