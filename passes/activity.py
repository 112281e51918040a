"""Activity analysis: which values of a function need a derivative.

A value is *active* when it is floating point, *varies* with a differentiated argument (forward
dataflow from the active arguments through differentiable ops) and is *useful* to a
differentiated result (backward dataflow from the chosen results). Both are computed to a
fixpoint through `scf.for`/`scf.while` carried values and `scf.if` yields, and through calls
(the callee is analysed with the caller's argument/result masks). Inactive and piecewise-
constant ops (derivatives.py) stop both flows. Everything else gets no derivative code.

Each decision keeps its reason, so `explain()` (and `LLDIFF_EXPLAIN=activity`, read by the
passes that use this analysis) can say why a value is active or not. IR analysis only: it
never changes the IR.
"""

from lldiff.ir import print_func
from lldiff.ir.printer import Namer

from .derivatives import op_kind, op_rule

__all__ = ["Activity", "analyze", "differentiable"]


def differentiable(t):
    """Floats, and arrays of floats (their elements)."""
    return t.is_float or t.is_memref and t.elem.is_float


def analyze(module, func, active_args, useful_results=None, memory_outputs=False):
    """Activity of `func` given a bool per argument (and per result; default: every float).
    `memory_outputs`: the contents of array arguments are results too (forward mode, whose
    tangent arrays show what the function wrote, e.g. the jvp of a gradient's shadows)."""
    if useful_results is None:
        useful_results = [differentiable(t) for t in func.result_types]
    return Activity(module, func, tuple(active_args), tuple(useful_results),
                    memory_outputs=memory_outputs)


class Activity:
    def __init__(self, module, func, active_args, useful_results, _memo=None,
                 memory_outputs=False):
        self.module = module
        self.func = func
        self.active_args = active_args
        self.useful_results = useful_results
        self._memo = {} if _memo is None else _memo
        self.varied = {}  # value -> reason: ("arg",) | (op, source value)
        self.useful = {}  # value -> reason: ("result", i) | (op, destination value)
        # reverse-mode tapes (ad.push/ad.pop of tape k) are memory too: a tape that records a
        # varied value gives varied pops; a pop that is useful makes the pushes useful
        self.varied_tapes = {}  # tape id -> a varied value pushed
        self.useful_tapes = {}  # tape id -> a useful value popped
        for a, on in zip(func.args, active_args):
            if on and differentiable(a.type):
                self.varied[a] = ("arg",)
        if memory_outputs:
            for a in func.args:
                if a.type.is_memref and differentiable(a.type):
                    self.useful[a] = ("memory",)
        self._fixpoint(self._forward)
        self._fixpoint(self._backward)

    def active(self, v):
        return v in self.varied and v in self.useful and v.type.is_float

    def active_tape(self, k):
        """Whether tape k records values that need derivatives (forward mode over a reverse
        sweep: passes/jvp.py then records tangents next to them)."""
        return k in self.varied_tapes and k in self.useful_tapes

    def active_memory(self, m):
        """An array that holds values varying with a differentiated argument: it gets a
        shadow (its adjoint or tangent, element by element)."""
        return m.type.is_memref and m in self.varied

    # --- interprocedural summaries -----------------------------------------------------------

    def _callee(self, op, args_mask, results_mask):
        key = (op.attrs["callee"], args_mask, results_mask)
        a = self._memo.get(key)
        if a is None:
            self._memo[key] = None  # recursion guard: the frontend rejects recursion anyway
            callee = self.module[op.attrs["callee"]]
            a = Activity(self.module, callee, args_mask, results_mask, self._memo)
            self._memo[key] = a
        return a

    # --- forward: varies with an active argument ---------------------------------------------

    def _fixpoint(self, step):
        while step():
            pass

    def _mark_varied(self, v, reason):
        if v in self.varied or not differentiable(v.type):
            return False
        self.varied[v] = reason
        return True

    def _forward(self):
        changed = False
        for op in self.func.walk():
            changed |= self._forward_op(op)
        return changed

    def _forward_op(self, op):
        n = op.name
        kind = op_kind(op)
        changed = False
        if kind == "rule":
            rule = op_rule(op)
            src = next((v for i, v in enumerate(op.operands)
                        if rule.has_partial(i) and v in self.varied), None)
            if src is not None:
                for r in op.results:
                    changed |= self._mark_varied(r, (op, src))
        elif n == "ad.push":
            k, v = op.attrs["tape"], op.operands[0]
            if v in self.varied and k not in self.varied_tapes:
                self.varied_tapes[k] = v
                changed = True
        elif n == "ad.pop":
            k = op.attrs["tape"]
            if k in self.varied_tapes:
                changed |= self._mark_varied(op.result, (op, self.varied_tapes[k]))
        elif n == "lldiff.load":
            if op.operands[0] in self.varied:
                changed |= self._mark_varied(op.result, (op, op.operands[0]))
        elif n == "lldiff.store":
            if op.operands[0] in self.varied:
                changed |= self._mark_varied(op.operands[1], (op, op.operands[0]))
        elif n == "func.call":
            mask = tuple(v in self.varied for v in op.operands)
            if any(mask):
                callee = self.module[op.attrs["callee"]]
                summary = self._callee(op, mask, tuple(t.is_float for t in callee.result_types))
                ret = callee.body.block.terminator
                src = next(v for v in op.operands if v in self.varied)
                for r, v in zip(op.results, ret.operands):
                    if summary is not None and v in summary.varied:
                        changed |= self._mark_varied(r, (op, src))
        elif n == "scf.if":
            for region in op.regions:
                if region.blocks:
                    y = region.block.terminator
                    for r, v in zip(op.results, y.operands):
                        if v in self.varied:
                            changed |= self._mark_varied(r, (op, v))
        elif n == "scf.for":
            body = op.regions[0].block
            y = body.terminator
            for i, r in enumerate(op.results):
                for src in (op.operands[3 + i], y.operands[i]):
                    if src in self.varied:
                        changed |= self._mark_varied(body.args[1 + i], (op, src))
                        changed |= self._mark_varied(r, (op, src))
        elif n == "scf.while":
            before, after = op.regions[0].block, op.regions[1].block
            cond, y = before.terminator, after.terminator
            for i, a in enumerate(before.args):
                for src in (op.operands[i], y.operands[i]):
                    if src in self.varied:
                        changed |= self._mark_varied(a, (op, src))
            for j, src in enumerate(cond.operands[1:]):
                if src in self.varied:
                    changed |= self._mark_varied(after.args[j], (op, src))
                    changed |= self._mark_varied(op.results[j], (op, src))
        return changed

    # --- backward: useful to a differentiated result -----------------------------------------

    def _mark_useful(self, v, reason):
        if v in self.useful or not differentiable(v.type):
            return False
        self.useful[v] = reason
        return True

    def _backward(self):
        changed = False
        ops = list(self.func.walk())
        for op in reversed(ops):
            changed |= self._backward_op(op)
        return changed

    def _backward_op(self, op):
        n = op.name
        kind = op_kind(op)
        changed = False
        if kind == "rule":
            dest = next((r for r in op.results if r in self.useful), None)
            if dest is not None:
                rule = op_rule(op)
                for i, v in enumerate(op.operands):
                    if rule.has_partial(i):
                        changed |= self._mark_useful(v, (op, dest))
        elif n == "ad.pop":
            k = op.attrs["tape"]
            if op.result in self.useful and k not in self.useful_tapes:
                self.useful_tapes[k] = op.result
                changed = True
        elif n == "ad.push":
            k = op.attrs["tape"]
            if k in self.useful_tapes:
                changed |= self._mark_useful(op.operands[0], (op, self.useful_tapes[k]))
        elif n == "lldiff.load":
            if op.result in self.useful:
                changed |= self._mark_useful(op.operands[0], (op, op.result))
        elif n == "lldiff.store":
            if op.operands[1] in self.useful:
                changed |= self._mark_useful(op.operands[0], (op, op.operands[1]))
        elif n == "func.return" and op.parent is self.func.body.block:
            for i, v in enumerate(op.operands):
                if self.useful_results[i]:
                    changed |= self._mark_useful(v, ("result", i))
        elif n == "func.call":
            mask = tuple(r in self.useful for r in op.results)
            if any(mask):
                summary = self._callee(op, tuple(v.type.is_float for v in op.operands), mask)
                callee = self.module[op.attrs["callee"]]
                dest = next(r for r in op.results if r in self.useful)
                for v, a in zip(op.operands, callee.args):
                    if summary is None or a in summary.useful:
                        changed |= self._mark_useful(v, (op, dest))
        elif n == "scf.if":
            for region in op.regions:
                if region.blocks:
                    y = region.block.terminator
                    for r, v in zip(op.results, y.operands):
                        if r in self.useful:
                            changed |= self._mark_useful(v, (op, r))
        elif n == "scf.for":
            body = op.regions[0].block
            y = body.terminator
            for i, r in enumerate(op.results):
                arg = body.args[1 + i]
                dest = r if r in self.useful else arg if arg in self.useful else None
                if dest is not None:
                    changed |= self._mark_useful(op.operands[3 + i], (op, dest))
                    changed |= self._mark_useful(y.operands[i], (op, dest))
        elif n == "scf.while":
            before, after = op.regions[0].block, op.regions[1].block
            cond, y = before.terminator, after.terminator
            for i, a in enumerate(before.args):
                if a in self.useful:
                    changed |= self._mark_useful(op.operands[i], (op, a))
                    changed |= self._mark_useful(y.operands[i], (op, a))
            for j, src in enumerate(cond.operands[1:]):
                dest = op.results[j] if op.results[j] in self.useful else \
                    after.args[j] if after.args[j] in self.useful else None
                if dest is not None:
                    changed |= self._mark_useful(src, (op, dest))
        return changed

    # --- explanation --------------------------------------------------------------------------

    def explain(self):
        """The function's IR followed by one line per float value: active or not, and why."""
        namer = Namer()
        text = print_func(self.func, namer)
        args = ", ".join(namer(a) for a, on in zip(self.func.args, self.active_args) if on)
        res = ", ".join(str(i) for i, on in enumerate(self.useful_results) if on)
        lines = [f"// activity of @{self.func.name}: differentiated arguments ({args}), "
                 f"results ({res})"]
        values = [a for a in self.func.args]
        for op in self.func.walk():
            for region in op.regions:
                for block in region.blocks:
                    values.extend(block.args)
            values.extend(op.results)
        for v in values:
            if not v.type.is_float:
                continue
            lines.append(f"//   {namer(v)}: {self._why(v, namer)}")
        return text + "\n".join(lines) + "\n"

    def _why(self, v, name):
        def reason(r, verb):
            if r[0] == "arg":
                return "differentiated argument"
            if r[0] == "result":
                return f"returned as result {r[1]}"
            if r[0] == "memory":
                return "an array argument (what is written to it is a result)"
            op, other = r
            return f"{verb} {name(other)} through {op.name}"
        vr, ur = self.varied.get(v), self.useful.get(v)
        if vr and ur:
            return f"active: varies ({reason(vr, 'from')}); useful ({reason(ur, 'into')})"
        if not vr:
            return "inactive: does not vary with the differentiated arguments"
        return "inactive: varies but reaches no differentiated result"
