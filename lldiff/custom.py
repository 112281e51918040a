"""User derivative rules: `@lldiff.custom_jvp` / `.defjvp` and `@lldiff.custom_vjp` /
`.defvjp`, as in JAX, with the rules written in the same Python subset and compiled.

A function with a rule is an `lldiff.jit` function whose calls (from Python or from other
compiled functions) are differentiated by the rule instead of by its body, in both modes and
under composition (passes/derivatives.py `op_rule`): a loop inside it is never
differentiated, and a rule can fix what plain AD gets wrong (a bisection's derivative is 0
almost everywhere). Rules take numbers (no arrays yet) and the function returns one float.

Signatures (flat, since compiled functions take numbers, not tuples):
  custom_jvp rule  rule(x1, ..., xn, dx_1, ..., dx_k) -> (y, dy)
                   one tangent per float argument, in order (int/bool arguments get none)
  custom_vjp rule  rule(x1, ..., xn, y, ybar) -> (xbar_1, ..., xbar_k)
                   one cotangent per float argument (a single float when k == 1)

Owns only the decorators; the rule is applied by the dispatcher (api.py) and the passes.
"""

from .api import Dispatcher, jit

__all__ = ["custom_jvp", "custom_vjp"]


class _Custom(Dispatcher):
    _kind = None

    def __repr__(self):
        return f"<lldiff.custom_{self._kind} {self.py_func.__qualname__}>"

    def _set_rule(self, rule):
        if not isinstance(rule, Dispatcher):
            if not callable(rule) or not hasattr(rule, "__code__"):
                raise TypeError(f"def{self._kind} expects a Python function, got "
                                f"{type(rule).__name__}")
            rule = jit(rule, opt=self.opt, verify=self.verify)
        self._custom = (self._kind, rule)
        self._derivs.clear()  # derivatives built before the rule was known
        self._maps.clear()
        self._plans.clear()
        return rule


class CustomJvp(_Custom):
    _kind = "jvp"

    def defjvp(self, rule):
        """Set the forward rule `rule(x..., dx...) -> (y, dy)`; usable as a decorator."""
        self._set_rule(rule)
        return rule


class CustomVjp(_Custom):
    _kind = "vjp"

    def defvjp(self, rule):
        """Set the reverse rule `rule(x..., y, ybar) -> cotangents`; usable as a decorator."""
        self._set_rule(rule)
        return rule


def _decorator(cls, who):
    def deco(fn=None, *, opt=None, verify=None):
        def wrap(f):
            d = jit(f, opt=opt, verify=verify)
            sub = type(f"{who}<{d.__name__}>", (cls,), {})
            c = sub(d.py_func, d.opt, d.verify)
            c.boundscheck = d.boundscheck
            return c
        return wrap if fn is None else wrap(fn)
    deco.__name__ = who
    return deco


custom_jvp = _decorator(CustomJvp, "custom_jvp")
custom_jvp.__doc__ = """Mark `fn` as having a forward rule, set with `@fn.defjvp`:
`rule(x..., dx...) -> (y, dy)`. Reverse mode uses the same rule (one call per float argument
with a unit tangent gives the partials)."""
custom_vjp = _decorator(CustomVjp, "custom_vjp")
custom_vjp.__doc__ = """Mark `fn` as having a reverse rule, set with `@fn.defvjp`:
`rule(x..., y, ybar) -> cotangents`. Forward mode uses the same rule (one call with ybar = 1
gives the partials), and Hessians differentiate the rule forward."""
