"""Forward mode end to end: the jvp/jacfwd API, the Bessel derivative against scipy, activity
visible in the jvp IR (no tangent code for inactive values, each paired with an execution test
against a closed form), vector mode, calls, explain output and the command line.
"""

import math
import os
import random
import subprocess
import sys

import numpy as np
import pytest

import lldiff
from lldiff.__main__ import poor_besselj

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# --- subjects -------------------------------------------------------------------------------

def poly_loop(x, n):
    """s = sum_i x * i, with an int counter and an int accumulator that need no tangent."""
    s = 0.0
    k = 0
    for i in range(n):
        s += x * i
        k += i * 2
    return s, k


def inactive_float_carry(x, n):
    """acc never depends on x: it is carried without a tangent; y is."""
    acc = 1.0
    y = x
    for i in range(n):
        acc = acc * 0.5
        y = y * acc
    return y


def scale_by_const(x, c):
    t = c * c + 1.0
    return x * t


def branchy(x):
    if math.sin(x) > 0:
        y = x * x
    else:
        y = 2.0
    return y


@lldiff.jit
def sq_plus(a, b):
    return a * a + b


@lldiff.jit
def calls_sq(x, y):
    return sq_plus(x, y) + sq_plus(y, 3.0)


def r4(a, b, c, d):
    """A small R^4 -> R^4 map with a closed-form Jacobian."""
    return a * b, math.sin(c) + d, a * c * d, math.exp(b) - a


def r4_jacobian(a, b, c, d):
    return ((b, a, 0.0, 0.0),
            (0.0, 0.0, math.cos(c), 1.0),
            (c * d, 0.0, a * d, a * c),
            (-1.0, math.exp(b), 0.0, 0.0))


def int_result(x):
    return int(x * 2), x > 1.0, x * 3.0


def converge(x):
    """Newton for sqrt(x): data-dependent trip count; d/dx = 1 / (2 sqrt(x))."""
    g = x if x > 1 else 1.0
    while abs(g * g - x) > 1e-14 * x:
        g = 0.5 * (g + x / g)
    return g


# --- API ------------------------------------------------------------------------------------

def test_jvp_of_bessel_series_matches_scipy_at_one_point():
    from scipy.special import jvp as sjvp
    y, dy = lldiff.jvp(poor_besselj, (2, 0.5), (None, 1.0))
    assert y == pytest.approx(0.030604023458682638, rel=1e-15)
    assert dy == pytest.approx(sjvp(2, 0.5, 1), rel=1e-14)


def test_jvp_tuple_outputs_give_tuple_tangents_and_none_for_ints():
    y, dy = lldiff.jvp(poly_loop, (1.5, 4), (2.0, None))
    assert y == (1.5 * 6, 12)
    assert dy == (2.0 * 6, None)


def test_jvp_int_and_bool_results_have_none_tangents():
    y, dy = lldiff.jvp(int_result, (2.5,), (1.0,))
    assert y == (5, True, 7.5)
    assert dy == (None, None, 3.0)


def test_jvp_accepts_zero_for_int_tangents_and_numpy_scalars():
    y, dy = lldiff.jvp(poly_loop, (np.float64(1.5), np.int64(4)), (np.float32(1.0), 0))
    assert dy == (6.0, None)


def test_jvp_rejects_nonzero_tangent_of_an_int_argument_naming_it():
    with pytest.raises(TypeError, match="argument 'n' is an int.*must be None or 0"):
        lldiff.jvp(poly_loop, (1.5, 4), (1.0, 1.0))


def test_jvp_plan_cache_does_not_confuse_argument_splits():
    f = lldiff.jit(scale_by_const)
    assert lldiff.jvp(f, (2.0, 3.0), (1.0, None)) == (20.0, 10.0)
    with pytest.raises(ValueError, match="1 primals but 3 tangents"):
        lldiff.jvp(f, (2.0,), (3.0, 1.0, None))


def test_repeated_jvp_calls_convert_or_refuse_tangents_as_the_first_call():
    """Later calls of the same kinds take a plan (one float tangent: the entry's result as
    is); tangents it cannot take as they are go to the checked path, with the same answers
    and errors as a first call."""
    f = lldiff.jit(scale_by_const)
    for _ in range(2):
        assert lldiff.jvp(f, (2.0, 3.0), (1.0, None)) == (20.0, 10.0)
        assert lldiff.jvp(f, (2.0, 3.0), (2, None)) == (20.0, 20.0)
        assert lldiff.jvp(f, (2.0, 3.0), (np.float64(0.5), None)) == (20.0, 5.0)
        assert lldiff.jvp(f, (2.0, 3.0), (None, 1.0)) == (20.0, 12.0)
        with pytest.raises(TypeError, match="tangent for argument 'x' must be a real"):
            lldiff.jvp(f, (2.0, 3.0), ("1", None))


def three(a, b, c):
    return a * b + c * c


def test_repeated_jvp_calls_of_one_and_three_arguments():
    """The plan keys spelled out for one and two arguments and the generic one agree with
    the key the first call stores."""
    one = lldiff.jit(int_result)
    f = lldiff.jit(three)
    for _ in range(3):
        assert lldiff.jvp(one, (2.5,), (1.0,)) == ((5, True, 7.5), (None, None, 3.0))
        assert lldiff.jvp(f, (2.0, 3.0, 5.0), (None, 1.0, None)) == (31.0, 2.0)
        assert lldiff.jvp(f, (2.0, 3.0, 5.0), (None, None, 1.0)) == (31.0, 10.0)
        assert lldiff.jvp(f, (2.0, 3.0, 5.0), (1.0, 1.0, 1.0)) == (31.0, 15.0)
    assert len(f._plans) == 3


def test_repeated_jacfwd_calls_equal_first_calls():
    """jacfwd of one number argument of a float function: later calls are the plan (the
    entry's tangent); calls of other argument types select their own sweep."""
    jac = lldiff.jacfwd(scale_by_const, argnums=1)
    one, third = lldiff.jacfwd(converge), lldiff.jacfwd(three, argnums=(0, 2))
    for _ in range(3):  # (keys of one, two and three arguments: ad.py spells the first two)
        assert jac(2.0, 3.0) == 2.0 * 2 * 3.0
        assert jac(2, 3.0) == 2 * 2 * 3.0
        assert jac(np.float64(2.0), 0.5) == 2.0 * 2 * 0.5
        assert one(4.0) == pytest.approx(0.25, rel=1e-12)
        assert third(2.0, 3.0, 5.0) == (3.0, 10.0)
        assert third(2.0, 3, 5.0) == (3.0, 10.0)


def test_jvp_rejects_non_tuple_primals_and_length_mismatch():
    with pytest.raises(TypeError, match="primals must be a tuple"):
        lldiff.jvp(poly_loop, 1.5, (1.0,))
    with pytest.raises(ValueError, match="2 primals but 1 tangents"):
        lldiff.jvp(poly_loop, (1.5, 4), (1.0,))
    with pytest.raises(TypeError, match="tangent for argument 'x' must be a real number"):
        lldiff.jvp(poly_loop, (1.5, 4), ("a", None))


def test_jvp_none_tangent_compiles_a_function_without_that_direction():
    f = lldiff.jit(scale_by_const)
    y, dy = lldiff.jvp(f, (2.0, 3.0), (1.0, None))
    assert (y, dy) == (20.0, 10.0)
    y, dy = lldiff.jvp(f, (2.0, 3.0), (None, 1.0))
    assert (y, dy) == (20.0, 2.0 * 2 * 3.0)
    masks = sorted(k[2] for k in f._derivs)
    assert masks == [(False, True), (True, False)]


def test_jvp_through_calls_between_jitted_functions():
    x, y = 1.25, -0.5
    val, d = lldiff.jvp(calls_sq, (x, y), (0.3, 0.7))
    assert val == x * x + y + y * y + 3.0
    assert d == pytest.approx(2 * x * 0.3 + 0.7 + 2 * y * 0.7, rel=1e-15)
    ir = calls_sq.inspect("jvp", x, y)
    # the callee is differentiated once in both arguments, once in the first only
    assert ".jvp.11" in ir and ".jvp.10" in ir


def test_jvp_through_a_data_dependent_while_loop():
    for x in (0.3, 2.0, 17.0, 1e6):
        y, dy = lldiff.jvp(converge, (x,), (1.0,))
        assert y == pytest.approx(math.sqrt(x), rel=1e-14)
        assert dy == pytest.approx(0.5 / math.sqrt(x), rel=1e-12)


def test_jacfwd_single_and_several_argnums():
    j = lldiff.jacfwd(scale_by_const)(2.0, 3.0)
    assert j == 10.0
    j = lldiff.jacfwd(scale_by_const, argnums=(0, 1))(2.0, 3.0)
    assert j == (10.0, 12.0)
    j = lldiff.jacfwd(scale_by_const, argnums=(1, 0))(2.0, 3.0)
    assert j == (12.0, 10.0)


def test_jacfwd_of_r4_map_in_one_vector_sweep_matches_closed_form():
    f = lldiff.jit(r4)
    jac = lldiff.jacfwd(f, argnums=(0, 1, 2, 3))
    rng = random.Random(3)
    for _ in range(20):
        p = [rng.uniform(-2, 2) for _ in range(4)]
        got = jac(*p)
        ref = r4_jacobian(*p)
        for row_g, row_r in zip(got, ref):
            for a, b in zip(row_g, row_r):
                assert a == pytest.approx(b, rel=1e-14, abs=1e-300)
    # one compiled function carrying four directions
    assert [(k[2], k[3]) for k in f._derivs] == [((True,) * 4, 4)]


def test_jacfwd_tuple_function_with_int_output_and_errors():
    jac = lldiff.jacfwd(poly_loop)
    assert jac(1.5, 4) == (6.0, None)
    with pytest.raises(TypeError, match="argument 'n' \\(argnums 1\\) is an int"):
        lldiff.jacfwd(poly_loop, argnums=1)(1.5, 4)
    with pytest.raises(ValueError, match="out of range"):
        lldiff.jacfwd(poly_loop, argnums=5)(1.5, 4)
    with pytest.raises(TypeError, match="argnums must be"):
        lldiff.jacfwd(poly_loop, argnums="x")
    with pytest.raises(ValueError, match="repeated"):
        lldiff.jacfwd(poly_loop, argnums=(0, 0))


def test_vector_mode_equals_single_direction_sweeps():
    f = lldiff.jit(r4)
    rng = random.Random(5)
    p = [rng.uniform(-2, 2) for _ in range(4)]
    cols = lldiff.jacfwd(f, argnums=(0, 1, 2, 3))(*p)
    for k in range(4):
        e = tuple(1.0 if i == k else 0.0 for i in range(4))
        _, dy = lldiff.jvp(f, tuple(p), e)
        assert tuple(row[k] for row in cols) == dy  # bit for bit


# --- the Bessel series against scipy ----------------------------------------------------------

def test_bessel_derivative_at_500_points_against_scipy():
    """d/dz of the seed's series against scipy.special.jvp(v, z, 1).

    The series itself loses accuracy as z grows (terms up to e^z / sqrt(z) cancel to |J| < 1),
    so the primal is off by ~1e-10 at z = 20 and no derivative of it can be closer than that.
    The bound is 1e-12 plus the series' own rounding bound, 4 eps * sum_k |d term_k / dz|,
    which stays below 1e-12 for z < 10 and reaches ~1e-8 at z = 20.
    """
    from scipy.special import jvp as sjvp
    rng = np.random.default_rng(42)
    vs = rng.integers(0, 6, 500)
    zs = rng.uniform(0.0, 20.0, 500)
    zs[zs == 0] = 0.1
    f = lldiff.jit(poor_besselj)
    worst_small_z = 0.0
    for v, z in zip(vs.tolist(), zs.tolist()):
        _, dy = lldiff.jvp(f, (v, z), (None, 1.0))
        ref = float(sjvp(v, z, 1))
        bound = 4 * 2.2e-16 * _series_derivative_magnitude(v, z)
        assert abs(dy - ref) <= 1e-12 + bound, (v, z, dy, ref, bound)
        if z < 10:
            worst_small_z = max(worst_small_z, abs(dy - ref))
    assert worst_small_z <= 1e-12


def _series_derivative_magnitude(v, z):
    """sum_k |d/dz term_k| for term_k = (-1)^k (z/2)^(2k+v) / (k! (k+v)!)."""
    total, k = 0.0, 0
    while True:
        t = (z / 2) ** (2 * k + v) / math.factorial(k) / math.factorial(k + v)
        d = t * (2 * k + v) / z
        total += d
        if k > 10 and t < 1e-30:
            return total
        k += 1


# --- activity in the IR: no tangent code for inactive values ----------------------------------

def _ops(ir, name):
    return sum(1 for line in ir.splitlines() if f" {name} " in line or
               line.strip().startswith(name))


def _loop_header(ir, kind):
    return next(line for line in ir.splitlines() if f"= {kind}" in line)


def test_int_counter_and_int_accumulator_carry_no_tangent():
    f = lldiff.jit(poly_loop)
    ir = f.inspect("jvp", 1.5, 4)
    head = _loop_header(ir, "scf.for")
    # carries: s, k and one tangent for s -- none for k
    assert head.count("iter_args") == 1
    assert "-> (f64, i64, f64)" in head, head
    assert _ops(ir, "arith.muli") == _ops(f.inspect("ir", 1.5, 4), "arith.muli")
    y, dy = lldiff.jvp(f, (1.5, 4), (1.0, None))
    assert dy == (6.0, None)


def test_inactive_float_carry_gets_no_tangent():
    f = lldiff.jit(inactive_float_carry)
    ir = f.inspect("jvp", 1.5, 3)
    head = _loop_header(ir, "scf.for")
    assert "-> (f64, f64, f64)" in head, head  # acc, y, dy -- no dacc
    primal = f.inspect("ir", 1.5, 3)
    # exactly one more multiply in the loop: dy * acc
    assert _ops(ir, "arith.mulf") == _ops(primal, "arith.mulf") + 1
    for x, n in ((1.5, 3), (-2.0, 5), (0.7, 0)):
        _, dy = lldiff.jvp(f, (x, n), (1.0, None))
        assert dy == pytest.approx(0.5 ** (n * (n + 1) / 2), rel=1e-15)


def test_undifferentiated_float_argument_gets_no_tangent_code():
    f = lldiff.jit(scale_by_const)
    ir = f.inspect("jvp", 2.0, 3.0)
    jvp_x = f._derived_ir(f.signatures[0], "jvp", (True, False))
    from lldiff.ir import print_func
    text = print_func(jvp_x.func)
    # c * c + 1.0 is computed once, then x's tangent is multiplied by it: two mulf, one addf
    assert _ops(text, "arith.mulf") == 3 and _ops(text, "arith.addf") == 1, text
    assert "%dc" not in text
    assert "%dc" in ir  # differentiating every float argument does give c a tangent
    y, dy = lldiff.jvp(f, (2.0, 3.0), (1.0, None))
    assert dy == 10.0


def test_no_arithmetic_on_zero_tangents():
    """No add/sub/mul/div/neg in any jvp function reads a constant 0.0 (a zero tangent)."""
    for fn, args in ((poly_loop, (1.5, 4)), (inactive_float_carry, (1.5, 3)),
                     (branchy, (0.5,)), (poor_besselj, (2, 0.5)), (r4, (1.0, 2.0, 3.0, 4.0))):
        f = lldiff.jit(fn)
        ir = f.inspect("jvp", *args)
        zeros = {line.split("=")[0].strip() for line in ir.splitlines()
                 if "arith.constant 0.00000000000000000e+00 : f64" in line}
        for line in ir.splitlines():
            if any(f"arith.{op} " in line for op in ("addf", "subf", "mulf", "divf", "negf")):
                operands = line.split(" ", 3)[-1].split(" : ")[0].replace(",", " ").split()
                assert not zeros & set(operands), f"{fn.__name__}: {line}"


def test_branch_yields_zero_tangent_only_where_the_branch_value_is_inactive():
    f = lldiff.jit(branchy)
    ir = f.inspect("jvp", 0.5)
    assert "scf.if" in ir
    for x in (0.5, 2.0, -0.5, 4.0):
        _, dy = lldiff.jvp(f, (x,), (1.0,))
        assert dy == (2 * x if math.sin(x) > 0 else 0.0)


def test_bessel_jvp_loop_carries_exactly_two_tangents():
    f = lldiff.jit(poor_besselj)
    ir = f.inspect("jvp", 2, 0.5)
    head = _loop_header(ir, "scf.while")
    # k, s, out and the tangents of s and out
    assert "-> (i64, f64, f64, f64, f64)" in head, head


def test_explain_activity(monkeypatch, capsys):
    monkeypatch.setenv("LLDIFF_EXPLAIN", "activity")
    f = lldiff.jit(inactive_float_carry)
    lldiff.jvp(f, (1.5, 3), (1.0, None))
    err = capsys.readouterr().err
    assert "// activity of @inactive_float_carry" in err
    assert "%x: active: varies (differentiated argument)" in err
    assert "%acc: inactive: does not vary with the differentiated arguments" in err
    assert "%y: active: varies (from %x through scf.for)" in err


# --- command line ---------------------------------------------------------------------------------

def test_cli_dump_jvp():
    p = subprocess.run([sys.executable, "-m", "lldiff", "dump", "tests/test_jvp.py:poly_loop",
                        "--sig", "float,int", "--stage", "jvp"], cwd=REPO_ROOT,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "func.func @poly_loop.f64_i64." in p.stdout and ".jvp.10(" in p.stdout
    assert "%dx: f64" in p.stdout
