"""The one derivative-rule table: for every IR op, how its result varies with its operands.

Forward mode (`jvp.py`) and reverse mode read the same entry. Each op in `lldiff.ir.OPS` is
exactly one of:

* **inactive**: integer, boolean and comparison ops, casts from ints, constants, `raise_if`.
  No float result varies with a float operand, so no derivative code is ever emitted.
* **piecewise constant**: float results whose derivative is zero wherever it exists (floor,
  ceil, trunc, roundeven). Activity stops there, like for inactive ops.
* **differentiable**: a `Rule` giving, for each operand, its partial derivative as IR built
  from the op's primal operands and result, and which of those values the partial reads
  (`reads`: names "x0", "x1", ... for operands, "y" for the result; reverse mode's cached-value
  analysis uses it). A rule may also give a specialised forward combination (`jvp`), used when
  one tangent direction is propagated, and a specialised adjoint (`vjp`).
* **structural**: scf/func ops, which the AD passes handle themselves.

`tests/test_derivatives.py` fails when an op has none of these, and checks every rule against
mpmath and every `reads` against what the rule actually emits.

Conventions at points where the derivative does not exist (JAX's where JAX has one):

* `abs(x)` at 0: 1 (JAX: `grad(abs)(0.) == 1`); `copysign(a, b)`: sign(a)·sign(b) w.r.t. a, 0
  w.r.t. b.
* `min`/`max` lower to `select`, so at a tie the derivative is that of the argument Python
  returns (the first one); JAX splits it ½/½ at ties instead.
* `sqrt(x)` at 0: +inf (0.5/sqrt(0)), as JAX. `cbrt` at 0: +inf, as JAX.
* `x ** y` (powf): ∂x = y·x^(y-1) but 0 when y == 0 (x^(y-1) computed as x^y / x where that
  is safe: `pow_dx_func`); ∂y = log(x)·x^y but 0 when x == 0 (JAX's
  rule: the log of a zero base is replaced by log 1). `x ** n` for an int n: n·x^(n-1), 0 for
  n == 0.
* `fmod(a, b)` (remf): ∂a = 1, ∂b = -q with q the integer quotient fmod truncated to, computed
  exactly as round((a - fmod(a, b)) / b) (JAX's `rem` uses trunc(a/b), which is off by one
  when a/b rounds up to an integer, as 1.0 % 0.1 does). Python's `%` on floats is built from
  remf and selects, so its derivative follows from this one.
* `atan2(y, x)` at (0, 0): nan (0/0), as JAX. `hypot(a, b)` at (0, 0): 0 for both.
* `lgamma`, `tgamma`: digamma, evaluated by an IR helper function (`digamma_func`): reflection
  below 1/2, recurrence up to 10, then the asymptotic series (about 1e-15 relative).

IR -> IR only: imports `lldiff.ir`.
"""

import math
import sys

from lldiff.ir import F32, F64, I64, Block, Builder, Func, Op, Region

from .rewrite import if_op

__all__ = ["RULES", "INACTIVE", "PIECEWISE_CONSTANT", "STRUCTURAL", "Rule", "Emit",
           "classify", "op_kind", "op_rule", "custom_rule_of", "digamma_func", "helper_func"]

STRUCTURAL = frozenset({"scf.if", "scf.for", "scf.while", "scf.yield", "scf.condition",
                        "func.return", "func.call",
                        # reverse-mode tape ops: only in derived functions, never differentiated
                        "ad.push", "ad.pop", "ad.tape", "ad.tape.push", "ad.tape.pop",
                        "ad.tape.free", "ad.count",
                        # the SPMD form (passes/spmd.py) is made from derived functions
                        "vector.broadcast", "lldiff.max_lanes"})

INACTIVE = frozenset({
    "arith.constant", "arith.addi", "arith.subi", "arith.muli", "arith.floordivsi",
    "arith.remsi", "arith.andi", "arith.ori", "arith.xori", "arith.cmpf", "arith.cmpi",
    "arith.sitofp", "arith.uitofp", "arith.fptosi", "arith.extui", "math.ipowi", "math.isnan",
    "math.isinf", "math.isfinite", "lldiff.factorial", "lldiff.raise_if",
    # Array ops move values through memory: activity.py and the AD passes handle load and
    # store themselves (shadow arrays); dim and alloc carry no derivative.
    "lldiff.load", "lldiff.store", "lldiff.dim", "lldiff.alloc"})

PIECEWISE_CONSTANT = frozenset({"math.floor", "math.ceil", "math.trunc", "math.roundeven"})


def classify(name):
    """'inactive', 'zero', 'rule' or 'structural'; KeyError for an op without an entry."""
    if name in STRUCTURAL:
        return "structural"
    if name in INACTIVE:
        return "inactive"
    if name in PIECEWISE_CONSTANT:
        return "zero"
    if name in RULES:
        return "rule"
    raise KeyError(f"no derivative rule for {name}")


def custom_rule_of(op):
    """("jvp" | "vjp", rule function name) for a call to a function with a user rule
    (`@lldiff.custom_jvp` / `@lldiff.custom_vjp`), else None."""
    if op.name == "func.call":
        for kind in ("jvp", "vjp"):
            rule = op.attrs.get("custom_" + kind)
            if rule is not None:
                return kind, rule
    return None


def op_kind(op):
    """`classify` for an op: a call with a user rule is differentiable like a rule op."""
    return "rule" if custom_rule_of(op) is not None else classify(op.name)


def op_rule(op):
    """The Rule of a differentiable op: the table's, or one made for a call with a user rule.

    A user rule replaces the callee's own derivative (its loops are never differentiated):
    * custom_jvp rule `r(x..., dx...) -> (y, dy)` (one tangent per float argument): the
      forward combination is one call with the tangents; partial i is the dy of a call with
      the unit tangent e_i (reverse mode, which multiplies by ybar);
    * custom_vjp rule `r(x..., y, ybar) -> (xbar...)` (one per float argument): the adjoint
      is one call with ybar; the partials are one call with ybar = 1 (forward mode then
      combines them with the tangents).
    The callee has one float result. Calls to the rule are plain calls, so a rule is itself
    differentiated when derivatives are composed (the Hessian of a custom_vjp function is
    forward mode over its backward rule)."""
    custom = custom_rule_of(op)
    if custom is None:
        return RULES[op.name]
    kind, name = custom
    n = len(op.operands)
    floats = [i for i, v in enumerate(op.operands) if v.type.is_float]
    every = frozenset(f"x{k}" for k in range(n))
    ft = op.results[0].type

    def call(e, args, count):
        return e.b.create("func.call", list(args), {"callee": name},
                          result_types=[ft] * count).results

    if kind == "jvp":
        def partials(e, x, y):
            out = [None] * n
            for i in floats:
                unit = [e.c(1.0 if j == i else 0.0) for j in floats]
                out[i] = call(e, list(x) + unit, 2)[1]
            return out

        def jvp(e, x, y, dx):
            return call(e, list(x) + [dx[j] if dx[j] is not None else e.c(0.0)
                                      for j in floats], 2)[1]
        return Rule(f"custom_jvp:{name}", partials,
                    [every if i in floats else None for i in range(n)], jvp=jvp)

    def partials(e, x, y):
        bars = call(e, list(x) + [y, e.c(1.0)], len(floats))
        out = [None] * n
        for i, bar in zip(floats, bars):
            out[i] = bar
        return out

    def vjp(e, x, y, ybar, need):
        bars = call(e, list(x) + [y, ybar], len(floats))
        out = [None] * n
        for i, bar in zip(floats, bars):
            out[i] = bar if need[i] else None
        return out
    return Rule(f"custom_vjp:{name}", partials,
                [every | {"y"} if i in floats else None for i in range(n)], vjp=vjp)


class Emit:
    """Builds the IR of a rule at the builder's insertion point, with constants typed like
    the op's operands. `helper(name)` returns the name of a module-level helper function
    (created on first use by the pass that owns the module)."""

    def __init__(self, builder, ftype=F64, helper=None):
        self.b = builder
        self.t = ftype
        self._helper = helper

    def c(self, value):
        return self.b.const(value, self.t)

    def _v(self, x):
        return self.c(x) if isinstance(x, (int, float)) else x

    def op(self, name, *xs, **attrs):
        return self.b.value(name, *[self._v(x) for x in xs], **attrs)

    def add(self, a, b): return self.op("arith.addf", a, b)
    def sub(self, a, b): return self.op("arith.subf", a, b)
    def mul(self, a, b): return self.op("arith.mulf", a, b)
    def div(self, a, b): return self.op("arith.divf", a, b)
    def neg(self, a): return self.op("arith.negf", a)
    def sqrt(self, a): return self.op("math.sqrt", a)
    def recip(self, a): return self.div(1.0, a)

    def cmp(self, pred, a, b):
        return self.op("arith.cmpf", a, b, pred=pred)

    def select(self, c, a, b):
        return self.op("arith.select", c, self._v(a), self._v(b))

    def call(self, helper, *args):
        name = self._helper(helper)
        op = self.b.create("func.call", list(args), {"callee": name}, result_types=[self.t])
        return op.result


class Rule:
    """A differentiable op: `partials(e, x, y) -> [partial or None per operand]`.

    A partial is an IR value, a Python float (±1.0 are applied without a multiply) or None
    (zero: the operand never contributes). `reads[i]` names the primal values partial i reads.
    `jvp(e, x, y, dx) -> tangent` (dx: a tangent or None per operand) and
    `vjp(e, x, y, ybar, need) -> [adjoint or None per operand]` are optional specialisations.
    """

    __slots__ = ("name", "partials", "reads", "jvp", "vjp")

    def __init__(self, name, partials, reads, jvp=None, vjp=None):
        self.name = name
        self.partials = partials
        self.reads = tuple(None if r is None else frozenset(r) for r in reads)
        self.jvp = jvp
        self.vjp = vjp

    def has_partial(self, i):
        """Whether operand i can contribute at all (False for ints and declared zeros)."""
        return self.reads[i] is not None


RULES = {}


def rule(name, reads, jvp=None, vjp=None):
    """Register `fn` as the partials of `name`; `reads[i]` is None for an operand that never
    contributes (an int, or a declared zero partial)."""
    def deco(fn):
        RULES[name] = Rule(name, fn, reads, jvp, vjp)
        return fn
    return deco


# --- arith ---------------------------------------------------------------------------------

@rule("arith.addf", [(), ()])
def _addf(e, x, y):
    return [1.0, 1.0]


@rule("arith.subf", [(), ()])
def _subf(e, x, y):
    return [1.0, -1.0]


@rule("math.fma", [("x1",), ("x0",), ()])
def _fma(e, x, y):
    return [x[1], x[0], 1.0]


@rule("arith.negf", [()])
def _negf(e, x, y):
    return [-1.0]


@rule("arith.mulf", [("x1",), ("x0",)])
def _mulf(e, x, y):
    return [x[1], x[0]]


def _divf_jvp(e, x, y, dx):
    da, db = dx
    if db is None:
        return e.div(da, x[1])
    num = e.mul(y, db)
    num = e.neg(num) if da is None else e.sub(da, num)
    return e.div(num, x[1])


def _divf_vjp(e, x, y, ybar, need):
    abar = e.div(ybar, x[1])
    bbar = e.neg(e.mul(abar, y)) if need[1] else None
    return [abar if need[0] else None, bbar]


@rule("arith.divf", [("x1",), ("y", "x1")], jvp=_divf_jvp, vjp=_divf_vjp)
def _divf(e, x, y):
    return [e.recip(x[1]), e.neg(e.div(y, x[1]))]


@rule("arith.remf", [(), ("x0", "x1", "y")])
def _remf(e, x, y):
    # the quotient fmod truncated is the integer (a - fmod(a, b)) / b; computing trunc(a / b)
    # instead (JAX) is off by one when a / b rounds up to an integer (1.0 % 0.1)
    q = e.op("math.roundeven", e.div(e.sub(x[0], y), x[1]))
    return [1.0, e.neg(q)]


def _select_jvp(e, x, y, dx):
    _, da, db = dx
    return e.select(x[0], da if da is not None else 0.0, db if db is not None else 0.0)


def _select_vjp(e, x, y, ybar, need):
    return [None, e.select(x[0], ybar, 0.0) if need[1] else None,
            e.select(x[0], 0.0, ybar) if need[2] else None]


@rule("arith.select", [None, ("x0",), ("x0",)], jvp=_select_jvp, vjp=_select_vjp)
def _select(e, x, y):
    return [None, e.select(x[0], 1.0, 0.0), e.select(x[0], 0.0, 1.0)]


def _fcast_jvp(e, x, y, dx):
    return e.b.value(y.op.name, dx[0], to=y.type)


def _fcast_vjp(e, x, y, ybar, need):
    back = "arith.truncf" if y.op.name == "arith.extf" else "arith.extf"
    return [e.b.value(back, ybar, to=x[0].type)]


@rule("arith.extf", [()], jvp=_fcast_jvp, vjp=_fcast_vjp)
def _extf(e, x, y):
    return [1.0]


@rule("arith.truncf", [()], jvp=_fcast_jvp, vjp=_fcast_vjp)
def _truncf(e, x, y):
    return [1.0]


# --- math ----------------------------------------------------------------------------------

def unary(name, reads):
    def deco(fn):
        RULES[name] = Rule(name, lambda e, x, y: [fn(e, x[0], y)], [reads])
        return fn
    return deco


@unary("math.sin", ("x0",))
def _sin(e, x, y): return e.op("math.cos", x)


@unary("math.cos", ("x0",))
def _cos(e, x, y): return e.neg(e.op("math.sin", x))


@unary("math.tan", ("y",))
def _tan(e, x, y): return e.add(1.0, e.mul(y, y))


def _one_minus_x2(e, x):
    return e.mul(e.sub(1.0, x), e.add(1.0, x))  # exact near |x| = 1, unlike 1 - x*x


@unary("math.asin", ("x0",))
def _asin(e, x, y): return e.recip(e.sqrt(_one_minus_x2(e, x)))


@unary("math.acos", ("x0",))
def _acos(e, x, y): return e.neg(e.recip(e.sqrt(_one_minus_x2(e, x))))


@unary("math.atan", ("x0",))
def _atan(e, x, y): return e.recip(e.add(1.0, e.mul(x, x)))


@unary("math.sinh", ("x0",))
def _sinh(e, x, y): return e.op("math.cosh", x)


@unary("math.cosh", ("x0",))
def _cosh(e, x, y): return e.op("math.sinh", x)


@unary("math.tanh", ("x0",))
def _tanh(e, x, y):  # sech(x)^2: 1 - tanh(x)^2 cancels to nothing for |x| > 19
    c = e.op("math.cosh", x)
    return e.recip(e.mul(c, c))


@unary("math.asinh", ("x0",))
def _asinh(e, x, y): return e.recip(e.op("lldiff.hypot", x, 1.0))  # no overflow in x*x


@unary("math.acosh", ("x0",))
def _acosh(e, x, y): return e.recip(e.mul(e.sqrt(e.sub(x, 1.0)), e.sqrt(e.add(x, 1.0))))


@unary("math.atanh", ("x0",))
def _atanh(e, x, y): return e.recip(_one_minus_x2(e, x))


@unary("math.exp", ("y",))
def _exp(e, x, y): return y


@unary("math.expm1", ("x0",))
def _expm1(e, x, y): return e.op("math.exp", x)  # expm1(x) + 1 cancels for x << 0


@unary("math.exp2", ("y",))
def _exp2(e, x, y): return e.mul(y, math.log(2.0))


@unary("math.log", ("x0",))
def _log(e, x, y): return e.recip(x)


@unary("math.log2", ("x0",))
def _log2(e, x, y): return e.recip(e.mul(x, math.log(2.0)))


@unary("math.log10", ("x0",))
def _log10(e, x, y): return e.recip(e.mul(x, math.log(10.0)))


@unary("math.log1p", ("x0",))
def _log1p(e, x, y): return e.recip(e.add(x, 1.0))


@unary("math.cbrt", ("y",))
def _cbrt(e, x, y): return e.recip(e.mul(3.0, e.mul(y, y)))


_TWO_OVER_SQRTPI = 2.0 / math.sqrt(math.pi)


@unary("math.erf", ("x0",))
def _erf(e, x, y): return e.mul(_TWO_OVER_SQRTPI, e.op("math.exp", e.neg(e.mul(x, x))))


@unary("math.erfc", ("x0",))
def _erfc(e, x, y): return e.mul(-_TWO_OVER_SQRTPI, e.op("math.exp", e.neg(e.mul(x, x))))


@unary("math.sqrt", ("y",))
def _sqrt(e, x, y): return e.div(0.5, y)


@unary("math.absf", ("x0",))
def _absf(e, x, y): return e.select(e.cmp("oge", x, 0.0), 1.0, -1.0)


@unary("lldiff.lgamma", ("x0",))
def _lgamma(e, x, y): return e.call("digamma", x)


@unary("lldiff.tgamma", ("x0", "y"))
def _tgamma(e, x, y): return e.mul(y, e.call("digamma", x))


@rule("math.atan2", [("x0", "x1"), ("x0", "x1")])
def _atan2(e, x, y):
    a, b = x  # atan2(a, b): angle of the point (b, a)
    r2 = e.add(e.mul(a, a), e.mul(b, b))
    return [e.div(b, r2), e.neg(e.div(a, r2))]


@rule("lldiff.hypot", [("x0", "y"), ("x1", "y")])
def _hypot(e, x, y):
    zero = e.cmp("oeq", y, 0.0)
    return [e.select(zero, 0.0, e.div(x[0], y)), e.select(zero, 0.0, e.div(x[1], y))]


@rule("math.powf", [("x0", "x1", "y"), ("x0", "y")])
def _powf(e, x, y):
    a, b = x
    da = e.mul(b, e.call("pow_dx", a, b, y))
    a_zero = e.cmp("oeq", a, 0.0)
    db = e.mul(e.op("math.log", e.select(a_zero, 1.0, a)), y)
    return [da, db]


@rule("math.copysign", [("x0", "x1"), None])
def _copysign(e, x, y):
    return [e.mul(e.op("math.copysign", 1.0, x[0]), e.op("math.copysign", 1.0, x[1])), None]


@rule("math.fpowi", [("x0", "x1"), None])
def _fpowi(e, x, y):
    a, n = x
    b = e.b
    one = b.const(1, I64)
    nm1 = b.value("arith.subi", n, one)
    p = e.mul(b.value("arith.sitofp", n, to=e.t), b.value("math.fpowi", a, nm1))
    n_zero = b.value("arith.cmpi", n, b.const(0, I64), pred="eq")
    return [e.select(n_zero, 0.0, p), None]


# --- helper functions the rules call --------------------------------------------------------

# Bernoulli-number coefficients B_2k / (2k) of the digamma asymptotic series in 1/x^2.
_PSI_SERIES = (1 / 12, -1 / 120, 1 / 252, -1 / 240, 1 / 132, -691 / 32760, 1 / 12)


def digamma_func(name, ftype=F64):
    """ψ(x) = d/dx log Γ(x) as an IR function: reflection ψ(x) = ψ(1-x) - π/tan(πx) below 1/2,
    the recurrence ψ(x) = ψ(x+1) - 1/x up to x >= 10, then ψ(x) ~ log x - 1/(2x) - Σ B_2k/(2k
    x^2k). Poles (0, -1, ...) give ±inf or a huge value; nan gives nan."""
    f = Func(name, [ftype], [ftype], ["x"])
    b = Builder(f.body.block)
    e = Emit(b, ftype)
    (x,) = f.args
    refl = e.cmp("olt", x, 0.5)
    xr = e.select(refl, e.sub(1.0, x), x)
    # π/tan(πx) with x reduced to [0, 1) first: tan has period π and x - floor(x) is exact.
    frac = e.sub(x, e.op("math.floor", x))
    cot = e.div(math.pi, e.op("math.tan", e.mul(math.pi, frac)))
    corr = e.select(refl, e.neg(cot), 0.0)
    # while xs < 10: acc -= 1/xs; xs += 1
    w = Op("scf.while", [xr, e.c(0.0)], [ftype, ftype],
           regions=[Region([Block([ftype, ftype], ["xs", "acc"])]),
                    Region([Block([ftype, ftype], ["xs", "acc"])])])
    b.insert(w)
    before, after = w.regions[0].block, w.regions[1].block
    eb = Emit(b.at(before), ftype)
    go = eb.cmp("olt", before.args[0], 10.0)
    eb.b.create("scf.condition", [go, *before.args], result_types=[])
    ea = Emit(b.at(after), ftype)
    xs, acc = after.args
    ea.b.create("scf.yield", [ea.add(xs, 1.0), ea.sub(acc, ea.recip(xs))], result_types=[])
    xs, acc = w.results
    inv = e.recip(xs)
    inv2 = e.mul(inv, inv)
    series = e.c(_PSI_SERIES[-1])
    for coef in reversed(_PSI_SERIES[:-1]):
        series = e.add(coef, e.mul(inv2, series))
    psi = e.sub(e.sub(e.op("math.log", xs), e.mul(0.5, inv)), e.mul(inv2, series))
    out = e.add(e.add(psi, acc), corr)
    b.create("func.return", [out], result_types=[])
    return f


def pow_dx_func(name, ftype=F64):
    """x^(y-1) for the partial y x^(y-1) of x^y, given r = x^y: r / x (one division, not a
    second pow: within about 1 ulp of x^(y-1), pow's 0.52 and the division's 0.5) where
    that is safe -- y != 0, x finite and nonzero, r a normal number (neither overflowed nor
    underflowed) -- else pow(x, y - 1), with y - 1 read as 1 when y == 0 (the partial
    y x^(y-1) is then 0 wherever x is finite)."""
    f = Func(name, [ftype] * 3, [ftype], ["x", "y", "r"])
    b = Builder(f.body.block)
    e = Emit(b, ftype)
    x, y, r = f.args
    fast = e.op("arith.andi", e.op("arith.andi", e.cmp("one", y, 0.0), e.cmp("one", x, 0.0)),
                e.op("arith.andi", e.op("math.isfinite", x), e.op("math.isfinite", r)))
    tiny = 2.0 ** -126 if ftype is F32 else sys.float_info.min  # the smallest normal
    fast = e.op("arith.andi", fast, e.cmp("oge", e.op("math.absf", r), tiny))

    def slow(bb):
        eb = Emit(bb, ftype)
        return [eb.op("math.powf", x, eb.select(eb.cmp("oeq", y, 0.0), 1.0, eb.sub(y, 1.0)))]
    out = if_op(b, fast, [ftype], lambda bb: [Emit(bb, ftype).div(r, x)], slow)
    b.create("func.return", out, result_types=[])
    return f


HELPERS = {"digamma": digamma_func, "pow_dx": pow_dx_func}


def helper_func(module, name, ftype):
    """The name of helper `name` for `ftype` in `module`, adding its function on first use."""
    hname = f"lldiff.{name}.{ftype}"
    if hname not in module.funcs:
        module.add(HELPERS[name](hname, ftype))
    return hname
