"""Taylor mode: `f(x) -> y` becomes `f.jet(x, x_1..x_K) -> (y, y_1..y_K)`, truncated Taylor
series of order K pushed through every op (seeds 000, the `jet` slides).

Values carry normalized coefficients: x(t) = x + x_1 t + x_2 t^2 + ... + x_K t^K. The pass is
the forward pass (jvp.py) with K "directions" -- the structured control flow, arrays and
activity come from there unchanged, since a loop or a branch carries the coefficients exactly
as it carries tangents -- and one difference: an op's output coefficients are computed from
all input coefficients together, by the classic recurrences (Griewank & Walther, ch. 13):

  linear ops (+, -, neg, select, abs, copysign, fmod, casts): y_k = sum_i partial_i x_ik
  product   y_k = sum_j a_j b_(k-j)
  quotient  y_k = (a_k - sum_(j>=1) b_j y_(k-j)) / b
  exp       y_k = 1/k sum_j j a_j y_(k-j)
  log       y' = u' / u, integrated as below
  power    y_k = 1/(k a) sum_j ((p+1) j - k) a_j y_(k-j)   (constant exponent p)
  sin/cos  carried as a pair; tanh, tan, sinh/cosh, expm1, exp2 through y' = g(y) u'
  others   y' = g(u) u' with g(u) itself a series (atan: 1/(1+u^2), erf: 2/sqrt(pi) e^(-u^2), ...)

Calls are inlined first. Ops without a Taylor rule (lgamma, tgamma: their derivatives need
polygamma functions) raise NotImplementedError naming the op. IR -> IR only.
"""

import math

from .activity import analyze
from .derivatives import RULES, Emit
from .inline import inline_calls
from .jvp import _Forward

__all__ = ["taylor_func", "taylor_name"]


def taylor_name(name, active_args, order):
    mask = "".join("1" if a else "0" for a in active_args)
    return f"{name}.jet.{mask}.k{order}"


def taylor_func(module, name, active_args, order):
    """Add the order-`order` Taylor function of `module[name]` to `module` unless there;
    return its name. Signature: the arguments, then `order` coefficients per flagged float
    argument; results: the results, then `order` coefficients per float result."""
    func = module[name]
    active_args = tuple(bool(a) and t.is_float for a, t in zip(active_args, func.arg_types))
    new_name = taylor_name(name, active_args, order)
    if new_name not in module.funcs:
        func = inline_calls(module, func)
        act = analyze(module, func, active_args, memory_outputs=True)
        module.add(_Taylor(module, func, act, order).build(new_name))
    return new_name


class _Taylor(_Forward):
    def call(self, op, b):
        raise NotImplementedError("Taylor mode through a call that was not inlined (a custom "
                                  "rule) is not supported")

    def rule(self, op, new, b):
        K = self.W
        xs = []
        for v, nv in zip(op.operands, new.operands):
            t = self.tmap.get(v)
            xs.append([nv] + (list(t) if t is not None else [None] * K))
        if all(all(c is None for c in x[1:]) for x in xs):
            return
        s = _Series(Emit(b, new.result.type, lambda name: self.helper(name, new.result.type)),
                    K)
        build = _TAYLOR.get(op.name)
        if build is None:
            if op.name in _LINEAR:
                ys = s.linear(op, xs, new.result)
            else:
                raise NotImplementedError(f"Taylor mode has no rule for {op.name}")
        else:
            ys = build(s, xs, new.result, op)
        self.tmap[op.result] = [s.value(c) for c in ys[1:]]


_LINEAR = {"arith.addf", "arith.subf", "arith.negf", "arith.select", "math.absf",
           "math.copysign", "arith.remf", "arith.extf", "arith.truncf"}


class _Series:
    """Truncated series as lists [c_0, c_1, ..., c_K] of IR values (None: exactly zero),
    with the arithmetic emitted through an Emit."""

    def __init__(self, e, K):
        self.e, self.K = e, K

    def value(self, c):
        return self.e.c(0.0) if c is None else c

    # exact-zero-aware scalar ops
    def _add(self, a, b):
        return b if a is None else a if b is None else self.e.add(a, b)

    def _mul(self, a, b):
        return None if a is None or b is None else self.e.mul(a, b)

    def _scale(self, a, c):
        return None if a is None else a if c == 1.0 else self.e.mul(a, c)

    def _sum(self, terms):
        acc = None
        for t in terms:
            acc = self._add(acc, t)
        return acc

    def const(self, c0):
        return [c0] + [None] * self.K

    def add(self, a, b):
        return [self._add(x, y) for x, y in zip(a, b)]

    def sub(self, a, b):
        return self.add(a, self.neg(b))

    def neg(self, a):
        return [None if x is None else self.e.neg(x) for x in a]

    def scale(self, a, c):
        return [self._scale(x, c) if isinstance(c, float) else self._mul(x, c) for x in a]

    def mul(self, a, b, y0=None):
        out = [y0 if y0 is not None else self.e.mul(a[0], b[0])]
        for k in range(1, self.K + 1):
            out.append(self._sum(self._mul(a[j], b[k - j]) for j in range(k + 1)))
        return out

    def div(self, a, b, y0=None):
        out = [y0 if y0 is not None else self.e.div(a[0], b[0])]
        for k in range(1, self.K + 1):
            acc = self._sum(self._mul(b[j], out[k - j]) for j in range(1, k + 1))
            num = a[k] if acc is None else self.e.sub(self.value(a[k]), acc)
            out.append(None if num is None else self.e.div(num, b[0]))
        return out

    def integrate(self, y0, g, u):
        """y with y' = g(t) u'(t), y(0) = y0: y_k = 1/k sum_(j=1..k) j u_j g_(k-j); `g` is
        a list or, when it depends on y, a function of the coefficients so far."""
        out = [y0]
        for k in range(1, self.K + 1):
            gs = g(out) if callable(g) else g
            acc = self._sum(self._scale(self._mul(u[j], gs[k - j]), float(j))
                            for j in range(1, k + 1))
            out.append(self._scale(acc, 1.0 / k))
        return out

    def exp(self, a, y0=None):
        return self.integrate(y0 if y0 is not None else self.e.op("math.exp", a[0]),
                              lambda ys: ys, a)

    def log(self, a, y0=None):
        return self.integrate(y0 if y0 is not None else self.e.op("math.log", a[0]),
                              self.div(self.const(self.e.c(1.0)), a), a)

    def sqrt(self, a, y0=None):
        r0 = y0 if y0 is not None else self.e.op("math.sqrt", a[0])
        out = [r0]
        two_r0 = self.e.mul(r0, 2.0)
        for k in range(1, self.K + 1):
            acc = self._sum(self._mul(out[j], out[k - j]) for j in range(1, k))
            num = a[k] if acc is None else self.e.sub(self.value(a[k]), acc)
            out.append(None if num is None else self.e.div(num, two_r0))
        return out

    def power(self, a, p, y0):
        """a^p for a constant exponent p (an IR value or float)."""
        out = [y0]
        for k in range(1, self.K + 1):
            terms = []
            for j in range(1, k + 1):
                if a[j] is None:
                    continue
                coef = self.e.sub(self.e.mul(p, float(j)), float(k - j)) \
                    if not isinstance(p, float) else (p * j - (k - j))
                t = self.e.mul(a[j], out[k - j]) if out[k - j] is not None else None
                terms.append(None if t is None else
                             self._scale(t, coef) if isinstance(coef, float) else
                             self.e.mul(t, coef))
            acc = self._sum(terms)
            out.append(None if acc is None else self.e.div(acc, self.e.mul(a[0], float(k))))
        return out

    def pair(self, a, s0, c0, sign):
        """sin/cos (sign -1) or sinh/cosh (sign +1) of a, carried together: s' = c a',
        c' = sign s a'."""
        s, c = [s0], [c0]
        for k in range(1, self.K + 1):
            ds = self._sum(self._scale(self._mul(a[j], c[k - j]), float(j))
                           for j in range(1, k + 1))
            dc = self._sum(self._scale(self._mul(a[j], s[k - j]), float(j))
                           for j in range(1, k + 1))
            s.append(self._scale(ds, 1.0 / k))
            c.append(self._scale(dc, sign / k))
        return s, c

    def linear(self, op, xs, y):
        """Ops whose partials are locally constant: the combination of the partials applies
        to every coefficient."""
        partials = RULES[op.name].partials(self.e, [x[0] for x in xs], y)
        out = [y]
        for k in range(1, self.K + 1):
            terms = []
            for p, x in zip(partials, xs):
                if p is None or x[k] is None:
                    continue
                terms.append(self._scale(x[k], p) if isinstance(p, float) else
                             self._mul(x[k], p))
            out.append(self._sum(terms))
        return out


def _poly_y(s, c0, c2):
    """g = c0 + c2 y^2 as a function of y's coefficients so far (tanh: 1 - y^2, tan: 1 + y^2)."""
    def g(ys):
        sq = [s._sum(s._mul(ys[j], ys[m - j]) for j in range(m + 1)) for m in range(len(ys))]
        out = [s._add(s.e.c(c0) if m == 0 else None, s._scale(sq[m], c2))
               for m in range(len(ys))]
        return out
    return g


def _u_only(build_g):
    """A unary op through y' = g(u) u' with g a series of u."""
    def rule(s, xs, y, op):
        return s.integrate(y, build_g(s, xs[0]), xs[0])
    return rule


def _one_plus_sq(s, u, c):
    """1 + c u^2 as a series."""
    return s.add(s.const(s.e.c(1.0)), s.scale(s.mul(u, u), c))


_TAYLOR = {
    "arith.mulf": lambda s, xs, y, op: s.mul(xs[0], xs[1], y),
    "arith.divf": lambda s, xs, y, op: s.div(xs[0], xs[1], y),
    "math.fma": lambda s, xs, y, op: [y] + s.add(s.mul(xs[0], xs[1]), xs[2])[1:],
    "math.exp": lambda s, xs, y, op: s.exp(xs[0], y),
    "math.log": lambda s, xs, y, op: s.log(xs[0], y),
    "math.sqrt": lambda s, xs, y, op: s.sqrt(xs[0], y),
    "math.sin": lambda s, xs, y, op: s.pair(xs[0], y, s.e.op("math.cos", xs[0][0]), -1.0)[0],
    "math.cos": lambda s, xs, y, op: s.pair(xs[0], s.e.op("math.sin", xs[0][0]), y, -1.0)[1],
    "math.sinh": lambda s, xs, y, op: s.pair(xs[0], y, s.e.op("math.cosh", xs[0][0]), 1.0)[0],
    "math.cosh": lambda s, xs, y, op: s.pair(xs[0], s.e.op("math.sinh", xs[0][0]), y, 1.0)[1],
    "math.tanh": lambda s, xs, y, op: s.integrate(y, _poly_y(s, 1.0, -1.0), xs[0]),
    "math.tan": lambda s, xs, y, op: s.integrate(y, _poly_y(s, 1.0, 1.0), xs[0]),
    "math.expm1": lambda s, xs, y, op: [y] + s.exp(xs[0], s.e.add(y, 1.0))[1:],
    "math.exp2": lambda s, xs, y, op: [y] + s.exp(s.scale(xs[0], math.log(2.0)), y)[1:],
    "math.log1p": lambda s, xs, y, op: s.integrate(
        y, s.div(s.const(s.e.c(1.0)), s.add(s.const(s.e.c(1.0)), xs[0])), xs[0]),
    "math.log2": lambda s, xs, y, op: s.integrate(
        y, s.div(s.const(s.e.c(1.0 / math.log(2.0))), xs[0]), xs[0]),
    "math.log10": lambda s, xs, y, op: s.integrate(
        y, s.div(s.const(s.e.c(1.0 / math.log(10.0))), xs[0]), xs[0]),
    "math.cbrt": lambda s, xs, y, op: s.power(xs[0], 1.0 / 3.0, y),
    "math.atan": _u_only(lambda s, u: s.div(s.const(s.e.c(1.0)), _one_plus_sq(s, u, 1.0))),
    "math.asin": _u_only(lambda s, u: s.div(s.const(s.e.c(1.0)),
                                            s.sqrt(_one_plus_sq(s, u, -1.0)))),
    "math.acos": _u_only(lambda s, u: s.div(s.const(s.e.c(-1.0)),
                                            s.sqrt(_one_plus_sq(s, u, -1.0)))),
    "math.asinh": _u_only(lambda s, u: s.div(s.const(s.e.c(1.0)),
                                             s.sqrt(_one_plus_sq(s, u, 1.0)))),
    "math.acosh": _u_only(lambda s, u: s.div(s.const(s.e.c(1.0)), s.sqrt(
        s.add(s.mul(u, u), s.const(s.e.c(-1.0)))))),
    "math.atanh": _u_only(lambda s, u: s.div(s.const(s.e.c(1.0)), _one_plus_sq(s, u, -1.0))),
    "math.erf": _u_only(lambda s, u: s.scale(s.exp(s.neg(s.mul(u, u))),
                                             2.0 / math.sqrt(math.pi))),
    "math.erfc": _u_only(lambda s, u: s.scale(s.exp(s.neg(s.mul(u, u))),
                                              -2.0 / math.sqrt(math.pi))),
}


def _powf(s, xs, y, op):
    a, b = xs
    if all(c is None for c in b[1:]):  # a constant exponent: the power recurrence
        return s.power(a, b[0], y)
    return [y] + s.exp(s.mul(b, s.log(a)), y)[1:]


def _fpowi(s, xs, y, op):
    """x ** n: for a constant n >= 0 by products of series (exact where x is 0, where the
    power recurrence divides by it), otherwise by the recurrence, with products where x is
    0."""
    src = getattr(op.operands[1], "op", None)
    if src is not None and src.name == "arith.constant" and 0 <= src.attrs["value"] <= 64:
        n = src.attrs["value"]
        out, base = s.const(s.e.c(1.0)), xs[0]
        while n:
            if n & 1:
                out = s.mul(out, base)
            n >>= 1
            if n:
                base = s.mul(base, base)
        return [y] + out[1:]
    n = xs[1][0]
    rec = s.power(xs[0], s.e.b.value("arith.sitofp", n, to=s.e.t), y)
    # where x is 0 the recurrence divides by 0: there, x^n for n = 0..K by products of
    # series, chosen by n at run time (for n > K every coefficient up to K is 0)
    a = xs[0]
    powers = [s.const(s.e.c(1.0))]
    for _ in range(s.K):
        powers.append(s.mul(powers[-1], a))
    at_zero = s.e.cmp("oeq", a[0], 0.0)
    out = [y]
    for k in range(1, s.K + 1):
        v = s.e.c(0.0)
        for m in range(s.K, -1, -1):
            if powers[m][k] is not None:
                is_m = s.e.b.value("arith.cmpi", n, s.e.b.const(m, n.type), pred="eq")
                v = s.e.select(is_m, powers[m][k], v)
        out.append(s.e.select(at_zero, v, s.value(rec[k])))
    return out


def _hypot(s, xs, y, op):
    return s.sqrt(s.add(s.mul(xs[0], xs[0]), s.mul(xs[1], xs[1])), y)


def _atan2(s, xs, y, op):
    """theta = atan2(a, b): theta' = (b a' - a b') / (a^2 + b^2)."""
    a, b = xs
    K = s.K
    da = [s._scale(a[m + 1], float(m + 1)) for m in range(K)] + [None]
    db = [s._scale(b[m + 1], float(m + 1)) for m in range(K)] + [None]
    num = s.sub(s.mul(b, da), s.mul(a, db))
    den = s.add(s.mul(a, a), s.mul(b, b))
    d = s.div(num, den)
    return [y] + [s._scale(d[k - 1], 1.0 / k) for k in range(1, K + 1)]


_TAYLOR.update({"math.powf": _powf, "math.fpowi": _fpowi, "lldiff.hypot": _hypot,
                "math.atan2": _atan2})
