"""The derivative-rule table: coverage of every op, declared reads, and every rule against mpmath.

Each differentiable op is wrapped in a one-op IR function, differentiated by the jvp pass in
every argument, and run both in the IR interpreter and compiled; the tangents must match
mpmath's high-precision numerical derivative of the same function to 1e-12 relative (at points
away from singularities and from zeros of the derivative, where relative error means nothing).
"""

import math
import random

import mpmath
import pytest

from lldiff.ir import F32, F64, I1, I64, OPS, Block, Builder, Func, Module, interpret, verify
from lldiff.passes import jvp_func, run_pipeline
from lldiff.passes.derivatives import (INACTIVE, PIECEWISE_CONSTANT, RULES, STRUCTURAL, Emit,
                                       classify, digamma_func)

mpmath.mp.dps = 40


# --- coverage ------------------------------------------------------------------------------

def test_every_op_has_a_rule_or_a_declaration():
    missing = []
    for name in OPS:
        try:
            classify(name)
        except KeyError:
            missing.append(name)
    assert not missing, f"ops without a derivative rule or declaration: {missing}"


def test_declarations_are_disjoint_and_name_real_ops():
    groups = [set(RULES), set(INACTIVE), set(PIECEWISE_CONSTANT), set(STRUCTURAL)]
    for i, a in enumerate(groups):
        assert a <= set(OPS), f"unknown ops: {a - set(OPS)}"
        for b in groups[i + 1:]:
            assert not a & b, f"ops declared twice: {a & b}"


def test_piecewise_constant_and_inactive_ops_have_float_or_int_results_as_declared():
    for name in PIECEWISE_CONSTANT:
        assert OPS[name].type_rule([F64], {}) == [F64]
    # an inactive op never has a float operand feeding a float result, except casts from
    # ints and constants, which have no float operand at all
    for name in INACTIVE:
        od = OPS[name]
        for types in _operand_types(name):
            res = od.type_rule(types, _attrs(name))
            assert not (any(t.is_float for t in types) and any(t.is_float for t in res)), name


def _attrs(name):
    return {"arith.cmpf": {"pred": "olt"}, "arith.cmpi": {"pred": "slt"},
            "arith.constant": {"value": 1.0, "type": F64}, "lldiff.raise_if":
            {"exc": "ValueError", "msg": "m"}, "arith.extf": {"to": F64},
            "arith.truncf": {"to": F32}}.get(name, {"to": F64 if name in (
                "arith.sitofp", "arith.uitofp") else I64})


def _operand_types(name):
    """Operand type lists the op's type rule accepts (from a small candidate set)."""
    if name == "arith.constant":
        return [[]]
    cands = [[], [F64], [F32], [I64], [I1], [F64, F64], [I64, I64], [F64, I64], [I1, F64, F64],
             [F64, F64, F64]]
    out = []
    for c in cands:
        try:
            OPS[name].type_rule(c, _attrs(name))
        except (TypeError, KeyError, ValueError, IndexError):
            continue
        out.append(c)
    return out


# --- declared reads match what each rule emits ----------------------------------------------

def _emit_rule(name):
    """A block holding the op on fresh arguments, then the rule's partials; returns
    (block, operands, result, partials)."""
    n = len(RULES[name].reads)
    (types,) = [t for t in _operand_types(name) if len(t) == n and any(u.is_float for u in t)][:1]
    f = Func("probe", types, [], [f"x{i}" for i in range(len(types))])
    b = Builder(f.body.block)
    y = b.create(name, list(f.args), _attrs(name) if name in ("arith.extf", "arith.truncf")
                 else None).result
    e = Emit(b, F64, helper=lambda h: "digamma")
    parts = RULES[name].partials(e, list(f.args), y)
    return f.body.block, list(f.args), y, parts, e


def _leaves(value, primal):
    """The primal values (operands, result) that `value` was computed from in its block."""
    seen, out, stack = set(), set(), [value]
    while stack:
        v = stack.pop()
        if id(v) in seen:
            continue
        seen.add(id(v))
        if v in primal:
            out.add(primal[v])
            continue
        op = getattr(v, "op", None)
        if op is not None:
            stack.extend(op.operands)
    return out


@pytest.mark.parametrize("name", sorted(RULES))
def test_declared_reads_are_exactly_what_each_partial_reads(name):
    block, xs, y, parts, e = _emit_rule(name)
    rule = RULES[name]
    primal = {x: f"x{i}" for i, x in enumerate(xs)}
    primal[y] = "y"
    assert len(parts) == len(xs) == len(rule.reads)
    for i, p in enumerate(parts):
        if rule.reads[i] is None:
            assert p is None, f"{name}: operand {i} declared without partial but has one"
            continue
        got = _leaves(p, primal) if not isinstance(p, float) else set()
        assert got == set(rule.reads[i]), f"{name}: partial {i} reads {got}, declared " \
                                          f"{set(rule.reads[i])}"


@pytest.mark.parametrize("name", sorted(n for n, r in RULES.items() if r.jvp or r.vjp))
def test_specialised_rules_read_only_declared_values(name):
    block, xs, y, parts, e = _emit_rule(name)
    rule = RULES[name]
    primal = {x: f"x{i}" for i, x in enumerate(xs)}
    primal[y] = "y"
    allowed = set().union(*[r for r in rule.reads if r is not None])
    f = block.parent  # unused; tangents and adjoints are fresh args of a second block
    seeds = Block([v.type for v in xs] + [y.type])
    if rule.jvp:
        dx = [a if rule.has_partial(i) else None for i, a in enumerate(seeds.args[:-1])]
        t = rule.jvp(e, xs, y, dx)
        assert _leaves(t, primal) <= allowed
    if rule.vjp:
        bars = rule.vjp(e, xs, y, seeds.args[-1], [rule.has_partial(i) for i in range(len(xs))])
        for bar in bars:
            if bar is not None:
                assert _leaves(bar, primal) <= allowed


# --- every rule against mpmath ---------------------------------------------------------------

def _u(lo, hi):
    return lambda r: r.uniform(lo, hi)


mp = mpmath.mp
# op -> (mpmath function, samplers per float operand); samplers avoid singularities.
ORACLES = {
    "arith.addf": (lambda a, b: a + b, [_u(-5, 5), _u(-5, 5)]),
    "arith.subf": (lambda a, b: a - b, [_u(-5, 5), _u(-5, 5)]),
    "arith.mulf": (lambda a, b: a * b, [_u(-5, 5), _u(-5, 5)]),
    "arith.divf": (lambda a, b: a / b, [_u(-5, 5), _u(0.2, 5)]),
    "arith.remf": (mpmath.fmod, [_u(0.1, 9), _u(0.3, 2)]),
    "arith.negf": (lambda a: -a, [_u(-5, 5)]),
    "math.fma": (lambda a, b, c: a * b + c, [_u(-5, 5), _u(-5, 5), _u(-5, 5)]),
    "math.sin": (mp.sin, [_u(-6, 6)]),
    "math.cos": (mp.cos, [_u(-6, 6)]),
    "math.tan": (mp.tan, [_u(-1.4, 1.4)]),
    "math.asin": (mp.asin, [_u(-0.999, 0.999)]),
    "math.acos": (mp.acos, [_u(-0.999, 0.999)]),
    "math.atan": (mp.atan, [_u(-30, 30)]),
    "math.sinh": (mp.sinh, [_u(-20, 20)]),
    "math.cosh": (mp.cosh, [_u(-20, 20)]),
    "math.tanh": (mp.tanh, [_u(-30, 30)]),
    "math.asinh": (mp.asinh, [_u(-1e3, 1e3)]),
    "math.acosh": (mp.acosh, [_u(1.001, 1e3)]),
    "math.atanh": (mp.atanh, [_u(-0.999, 0.999)]),
    "math.exp": (mp.exp, [_u(-30, 30)]),
    "math.expm1": (mp.expm1, [_u(-40, 20)]),
    "math.exp2": (lambda a: mp.power(2, a), [_u(-30, 30)]),
    "math.log": (mp.log, [_u(1e-3, 1e3)]),
    "math.log2": (lambda a: mp.log(a, 2), [_u(1e-3, 1e3)]),
    "math.log10": (mp.log10, [_u(1e-3, 1e3)]),
    "math.log1p": (mp.log1p, [_u(-0.999, 1e3)]),
    "math.cbrt": (mp.cbrt, [_u(0.01, 100)]),
    "math.erf": (mp.erf, [_u(-4, 4)]),
    "math.erfc": (mp.erfc, [_u(-4, 4)]),
    "math.sqrt": (mp.sqrt, [_u(1e-3, 1e3)]),
    "math.absf": (abs, [_u(-5, 5)]),
    "math.atan2": (mp.atan2, [_u(-5, 5), _u(-5, 5)]),
    "math.powf": (mp.power, [_u(0.1, 5), _u(-3, 3)]),
    "math.copysign": (lambda a, b: abs(a) if b >= 0 else -abs(a), [_u(-5, 5), _u(-5, 5)]),
    "lldiff.hypot": (mp.hypot, [_u(-5, 5), _u(-5, 5)]),
    "lldiff.lgamma": (lambda a: mp.log(abs(mp.gamma(a))), [_u(2, 30)]),
    "lldiff.tgamma": (mp.gamma, [_u(0.1, 20)]),
    "math.fpowi": (None, None),   # int exponent: below
    "arith.select": (None, None),  # i1 operand: below
    "arith.extf": (None, None),    # f32 <-> f64: below, as a round trip
    "arith.truncf": (None, None),
}


def test_every_rule_has_an_oracle():
    assert set(ORACLES) == set(RULES)


def _one_op_funcs():
    """One IR function per (op, float operand) checked here, plus its jvp; and the samples."""
    module = Module()
    cases = []
    rng = random.Random(1234)
    for name, (mpf, samplers) in sorted(ORACLES.items()):
        if mpf is None:
            continue
        n = len(samplers)
        f = Func(name.replace(".", "_"), [F64] * n, [F64])
        b = Builder(f.body.block)
        y = b.create(name, list(f.args)).result
        b.create("func.return", [y], result_types=[])
        module.add(f)
        for i in range(n):
            mask = [j == i for j in range(n)]
            jname = jvp_func(module, f.name, mask)
            pts = [[s(rng) for s in samplers] for _ in range(25)]
            cases.append((name, i, jname, mpf, pts))
    # x ** n for int n, and select on both conditions
    f = Func("fpowi", [F64, I64], [F64])
    b = Builder(f.body.block)
    b.create("func.return", [b.value("math.fpowi", *f.args)], result_types=[])
    module.add(f)
    jname = jvp_func(module, "fpowi", [True, False])
    pts = [[rng.uniform(0.2, 3), n] for n in (-5, -2, -1, 0, 1, 2, 3, 7) for _ in range(3)]
    cases.append(("math.fpowi", 0, jname, lambda a, n: mp.power(a, n), pts))
    f = Func("select", [I1, F64, F64], [F64])
    b = Builder(f.body.block)
    b.create("func.return", [b.value("arith.select", *f.args)], result_types=[])
    module.add(f)
    for i in (1, 2):
        jname = jvp_func(module, "select", [False, i == 1, i == 2])
        pts = [[c, rng.uniform(-3, 3), rng.uniform(-3, 3)] for c in (True, False)]
        cases.append(("arith.select", i, jname, lambda c, a, b: a if c else b, pts))
    # float32 storage: x -> f32 -> f64 has derivative 1 (rounding is not differentiated)
    for name in ("arith.extf", "arith.truncf"):
        f = Func(name.replace(".", "_"), [F64], [F64])
        b = Builder(f.body.block)
        y = b.value("arith.extf", b.value("arith.truncf", f.args[0], to=F32), to=F64)
        b.create("func.return", [y], result_types=[])
        module.add(f)
        jname = jvp_func(module, f.name, [True])
        pts = [[k / 8] for k in range(-20, 20)]
        cases.append((name, 0, jname, lambda a: a, pts))
    verify(module)
    run_pipeline(module, "canonicalize", verify=True)
    return module, cases


def _mp_partial(fn, point, i):
    def g(t):
        p = [mpmath.mpf(v) if isinstance(v, float) else v for v in point]
        p[i] = t
        return fn(*p)
    return float(mpmath.diff(g, mpmath.mpf(point[i])))


@pytest.fixture(scope="module")
def one_op():
    module, cases = _one_op_funcs()
    from lldiff import codegen
    from lldiff.runtime import get_engine, make_builtin
    names = [c[2] for c in cases]
    text = codegen.emit(module, names, name="one_op")
    lib = get_engine().compile(text, 2, [codegen.entry_name(n) for n in names])

    def fallback(*a):
        raise AssertionError(f"unexpected fallback {a}")
    native = {n: make_builtin(lib.addresses[codegen.entry_name(n)], n, fallback, lib)
              for n in names}
    return module, cases, native


def test_rules_match_mpmath(one_op):
    module, cases, native = one_op
    bad = []
    for name, i, jname, mpf, pts in cases:
        for p in pts:
            ref = _mp_partial(mpf, p, i)
            args = list(p) + [1.0]
            y, dy = interpret(module, jname, args)
            y2, dy2 = native[jname](*args)
            tol = 1e-12 * abs(ref) + 1e-300
            if not abs(dy - ref) <= tol or not abs(dy2 - ref) <= tol:
                bad.append((name, i, p, dy, dy2, ref))
    assert not bad, "\n".join(map(str, bad[:20]))


# --- conventions at non-differentiable points (documented in derivatives.py) -------------------

CONVENTIONS = [
    ("math.absf", [0.0], 0, 1.0),
    ("math.absf", [-0.0], 0, 1.0),
    ("math.sqrt", [0.0], 0, math.inf),
    ("math.cbrt", [0.0], 0, math.inf),
    ("math.powf", [0.0, 0.0], 0, 0.0),  # y == 0: d/dx is 0 (JAX)
    ("math.powf", [0.0, 2.0], 1, 0.0),  # x == 0: d/dy is 0 (JAX)
    ("math.powf", [0.0, 2.0], 0, 0.0),
    ("lldiff.hypot", [0.0, 0.0], 0, 0.0),
    ("arith.remf", [7.0, 2.0], 1, -3.0),
    ("arith.remf", [1.0, 0.1], 1, -9.0),  # 1.0 / 0.1 rounds to 10, the quotient is 9
    ("math.copysign", [2.0, -1.0], 0, -1.0),
]


@pytest.mark.parametrize("name,point,i,expected", CONVENTIONS)
def test_conventions_at_non_differentiable_points(one_op, name, point, i, expected):
    module, cases, native = one_op
    (jname,) = [c[2] for c in cases if c[0] == name and c[1] == i]
    _, dy = native[jname](*point, 1.0)
    assert dy == expected


# (x, y) where x^y / x is unsafe for x^(y-1) in d/dx x^y (x zero or infinite, x^y
# overflowed or underflowed), so pow_dx_func takes pow(x, y - 1), and a few where it is safe.
POW_DX = [(0.0, 0.5, math.inf), (0.0, 1.0, 1.0), (0.0, 3.0, 0.0), (math.inf, 2.0, math.inf),
          (1e200, 1.6, None), (1e-200, 1.6, None), (1e-300, 1.5, None), (-2.0, 3.0, None),
          (-2.0, -2.0, None), (-0.5, 5.0, None), (3.0, 1e-20, None), (0.7, -2.5, None)]


@pytest.mark.parametrize("x,y,expected", POW_DX)
def test_pow_partial_in_x_with_and_without_a_second_pow(one_op, x, y, expected):
    module, cases, native = one_op
    (jname,) = [c[2] for c in cases if c[0] == "math.powf" and c[1] == 0]
    if expected is None:
        expected = float(y * mpmath.power(mpmath.mpf(x), mpmath.mpf(y) - 1))
    for got in (native[jname](x, y, 1.0)[1], interpret(module, jname, [x, y, 1.0])[1]):
        assert got == expected or abs(got - expected) <= 4e-16 * abs(expected), got


def test_atan2_at_origin_is_nan_like_jax(one_op):
    module, cases, native = one_op
    (jname,) = [c[2] for c in cases if c[0] == "math.atan2" and c[1] == 0]
    assert math.isnan(native[jname](0.0, 0.0, 1.0)[1])


def test_fpowi_zero_exponent_has_zero_derivative_even_at_zero(one_op):
    module, cases, native = one_op
    (jname,) = [c[2] for c in cases if c[0] == "math.fpowi"]
    assert native[jname](0.0, 0, 1.0) == (1.0, 0.0)
    assert native[jname](0.0, 1, 1.0) == (0.0, 1.0)


# --- the digamma helper ----------------------------------------------------------------------

def test_digamma_helper_against_mpmath():
    m = Module([digamma_func("digamma")])
    verify(m)
    rng = random.Random(7)
    xs = [rng.uniform(-20, 60) for _ in range(200)] + [1e-8, 0.5, 1.0, 1e5, -0.5, -7.25]
    for x in xs:
        ref = mpmath.digamma(x)
        if abs(ref) < 1e-3 or abs(x - round(x)) < 1e-3 and x < 0:
            continue  # near its zero (relative error is meaningless) or a pole
        got = interpret(m, "digamma", [x])[0]
        # reflection reduces x to [0, 1) exactly, so the error is that of tan near its poles
        assert abs(got - ref) <= 2e-13 * abs(ref) * max(1.0, abs(x)), x
