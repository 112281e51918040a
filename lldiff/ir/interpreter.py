"""A reference interpreter that executes IR in Python.

The oracle for passes (run before and after, compare) and for codegen (compiled code must
agree). Semantics of primitive ops come from `ops.py`; this module owns only the walk over
structured control flow. Slow by design; never used to run user code for speed.
"""

from .ops import OPS

__all__ = ["run", "COUNTS"]

_TAPES = object()
COUNTS = {}  # the interpreter's `ad.count` counters: counter -> total


def run(module, func_name, args):
    """Call `func_name` in `module` with Python values; return a list of result values."""
    return _Interp(module).call(module[func_name], list(args))


class _Interp:
    def __init__(self, module):
        self.module = module

    def call(self, func, args):
        env = dict(zip(func.args, args))
        env[_TAPES] = {}  # this call's abstract tapes: id -> list (ad.push / ad.pop)
        _, vals = self.block(func.body.block, env)
        return vals

    def block(self, block, env):
        """Execute `block`; return its terminator's name and operand values."""
        for op in block.ops:
            n = op.name
            if n in ("scf.yield", "scf.condition", "func.return"):
                return n, [env[v] for v in op.operands]
            if n == "scf.if":
                region = op.regions[0] if env[op.operands[0]] else op.regions[1]
                vals = self.region(region, env, []) if region.blocks else []
            elif n == "scf.for":
                vals = self.scf_for(op, env)
            elif n == "scf.while":
                vals = self.scf_while(op, env)
            elif n.startswith("ad."):
                vals = self.tape_op(op, env)
            elif n == "func.call":
                vals = self.call(self.module[op.attrs["callee"]], [env[v] for v in op.operands])
            else:
                r = OPS[n].eval(op.attrs, *[env[v] for v in op.operands])
                vals = [r] if op.results else []
            for res, v in zip(op.results, vals):
                env[res] = v
        raise RuntimeError("block without terminator")

    def tape_op(self, op, env):
        n, a = op.name, [env[v] for v in op.operands]
        if n == "ad.push":
            env[_TAPES].setdefault(op.attrs["tape"], []).append(a[0])
        elif n == "ad.pop":
            return [env[_TAPES][op.attrs["tape"]].pop()]
        elif n == "ad.tape":
            return [[]]
        elif n == "ad.tape.push":
            a[0].append(a[1])
        elif n == "ad.tape.pop":
            return [a[0].pop()]
        elif n == "ad.count":
            COUNTS[op.attrs["counter"]] = COUNTS.get(op.attrs["counter"], 0) + a[0]
        elif n == "ad.tape.free" and a[0]:
            raise RuntimeError(f"tape freed with {len(a[0])} values left on it")
        return []

    def region(self, region, env, args):
        block = region.block
        inner = dict(env)
        inner.update(zip(block.args, args))
        return self.block(block, inner)[1]

    def scf_for(self, op, env):
        lb, ub, step, *inits = (env[v] for v in op.operands)
        vals = inits
        i = lb
        while i < ub:
            vals = self.region(op.regions[0], env, [i] + vals)
            i += step
        return vals

    def scf_while(self, op, env):
        vals = [env[v] for v in op.operands]
        while True:
            cond, *out = self.region(op.regions[0], env, vals)
            if not cond:
                return out
            vals = self.region(op.regions[1], env, out)
