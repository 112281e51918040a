"""The IR layer on its own (no LLVM): hand-built functions, the verifier, the printer, the
reference interpreter, `canonicalize`, and the shape of a few frontend lowerings.

Hand-built IR follows what lldiff/frontend/lower.py emits: `scf.if`/`scf.for`/`scf.while` ops
own single-block regions that end in `scf.yield` (or `scf.condition`), and a function's body
ends in `func.return`.
"""

import math
import os
import re
import subprocess
import sys
import tempfile

import pytest
import lldiff

from lldiff.frontend import get_source, lower_function
from lldiff.ir import (F64, I1, I64, OPS, Builder, Func, Module, Op, VerificationError,
                       interpret, print_module, verify)
from lldiff.ir.printer import format_float
from lldiff.passes import canonicalize

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# --- helpers ----------------------------------------------------------------------------------

def lower(fn, *types):
    """The frontend's IR for `fn` specialized to `types`, before any pass."""
    func, callees = lower_function(get_source(fn), list(types), fn.__name__,
                                   lambda obj, arg_types: None)
    return Module([func, *callees])


def run(module, *args):
    name = next(iter(module)).name
    out = interpret(module, name, list(args))
    return out[0] if len(out) == 1 else tuple(out)


def ret(b, *vals):
    return b.create("func.return", list(vals), result_types=[])


def yld(b, *vals):
    return b.create("scf.yield", list(vals), result_types=[])


def build_abs():
    """abs(x) for f64 with an scf.if yielding one result; returns (module, parts)."""
    f = Func("absf", [F64], [F64], ["x"])
    b = Builder(f.body.block)
    (x,) = f.args
    zero = b.const(0.0, F64)
    c = b.value("arith.cmpf", x, zero, pred="olt")
    then_r, tb = b.block_region()
    else_r, eb = b.block_region()
    neg = b.at(tb).value("arith.negf", x)
    yld(b.at(tb), neg)
    yld(b.at(eb), x)
    if_op = b.create("scf.if", [c], result_types=[F64], regions=[then_r, else_r])
    r = ret(b, if_op.result)
    return Module([f]), dict(func=f, if_op=if_op, neg=neg, ret=r, then=tb, x=x, cond=c)


def build_sum_range():
    """sum(float(i) * x for i in range(n)) with scf.for and one iter_arg."""
    f = Func("sumr", [F64, I64], [F64], ["x", "n"])
    b = Builder(f.body.block)
    x, n = f.args
    lb, step, init = b.const(0, I64), b.const(1, I64), b.const(0.0, F64)
    region, body = b.block_region([I64, F64], ["i", "acc"])
    bb = b.at(body)
    i, acc = body.args
    fi = bb.value("arith.sitofp", i, to=F64)
    t = bb.value("arith.mulf", fi, x)
    yld(bb, bb.value("arith.addf", acc, t))
    loop = b.create("scf.for", [lb, n, step, init], result_types=[F64], regions=[region])
    ret(b, loop.result)
    return Module([f]), dict(func=f, loop=loop, body=body)


def build_halvings():
    """Count halvings of x until x <= 1 with scf.while; returns (x_final, count)."""
    f = Func("halve", [F64], [F64, I64], ["x"])
    b = Builder(f.body.block)
    (x,) = f.args
    zero = b.const(0, I64)
    before_r, before = b.block_region([F64, I64], ["x", "k"])
    after_r, after = b.block_region([F64, I64], ["x", "k"])
    bb = b.at(before)
    one = bb.const(1.0, F64)
    c = bb.value("arith.cmpf", before.args[0], one, pred="ogt")
    bb.create("scf.condition", [c, *before.args], result_types=[])
    ab = b.at(after)
    half = ab.value("arith.divf", after.args[0], ab.const(2.0, F64))
    k1 = ab.value("arith.addi", after.args[1], ab.const(1, I64))
    yld(ab, half, k1)
    loop = b.create("scf.while", [x, zero], result_types=[F64, I64],
                    regions=[before_r, after_r])
    ret(b, *loop.results)
    return Module([f]), dict(func=f, loop=loop, before=before, after=after)


def _same(a, b):
    if isinstance(a, tuple):
        return isinstance(b, tuple) and len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    return a == b and type(a) is type(b)


# --- the verifier -----------------------------------------------------------------------------

@pytest.mark.parametrize("build", [build_abs, build_sum_range, build_halvings])
def test_verifier_accepts_hand_built_ir(build):
    m, _ = build()
    assert verify(m) is m


def test_hand_built_ir_interprets():
    m, _ = build_abs()
    assert run(m, -2.5) == 2.5 and run(m, 3.0) == 3.0
    m, _ = build_sum_range()
    assert run(m, 0.5, 4) == 0.5 * (0 + 1 + 2 + 3)
    assert run(m, 0.5, 0) == 0.0
    m, _ = build_halvings()
    assert run(m, 10.0) == (0.625, 4)
    assert run(m, 0.5) == (0.5, 0)


def test_verifier_rejects_use_not_dominated_by_then_region_value():
    m, p = build_abs()
    p["ret"].operands = [p["neg"]]  # the negf result lives inside the then-region
    with pytest.raises(VerificationError, match="dominate"):
        verify(m)


def test_verifier_rejects_use_before_definition_in_a_block():
    m, p = build_abs()
    ops = p["func"].body.block.ops
    ops[0], ops[1] = ops[1], ops[0]  # cmpf before the constant it reads
    with pytest.raises(VerificationError, match="dominate"):
        verify(m)


def test_verifier_rejects_loop_body_value_used_outside():
    m, p = build_sum_range()
    inner = p["body"].ops[0].result
    ret_op = p["func"].body.block.ops[-1]
    ret_op.operands = [inner]
    with pytest.raises(VerificationError):
        verify(m)


def test_verifier_rejects_type_mismatch():
    f = Func("bad", [F64, I64], [F64], ["x", "n"])
    b = Builder(f.body.block)
    x, n = f.args
    with pytest.raises(TypeError):
        b.value("arith.addf", x, n)  # the builder's type rule refuses it
    s = b.create("arith.addf", [x, n], result_types=[F64]).result  # forced
    ret(b, s)
    with pytest.raises(VerificationError, match="arith.addf"):
        verify(Module([f]))


def test_verifier_rejects_wrong_result_type():
    f = Func("bad", [F64, F64], [I64], ["x", "y"])
    b = Builder(f.body.block)
    s = b.create("arith.addf", list(f.args), result_types=[I64]).result
    ret(b, s)
    with pytest.raises(VerificationError):
        verify(Module([f]))


def test_verifier_rejects_return_type_mismatch():
    m, p = build_abs()
    p["func"].result_types = [I64]
    with pytest.raises(VerificationError, match="return"):
        verify(m)


def test_verifier_rejects_yield_with_wrong_types():
    m, p = build_abs()
    tb = p["then"]
    y = tb.ops[-1]
    c = Op("arith.constant", [], [I64], {"value": 1, "type": I64})
    c.parent = tb
    tb.ops.insert(0, c)
    y.operands = [c.result]  # then yields i64, the scf.if declares f64
    with pytest.raises(VerificationError, match="yield"):
        verify(m)


def test_verifier_rejects_yield_with_wrong_count():
    m, p = build_sum_range()
    y = p["body"].ops[-1]
    y.operands = []
    with pytest.raises(VerificationError):
        verify(m)


def test_verifier_rejects_missing_function_terminator():
    m, p = build_abs()
    p["func"].body.block.ops.pop()  # drop func.return
    with pytest.raises(VerificationError, match="func.return"):
        verify(m)


def test_verifier_rejects_missing_region_terminator():
    m, p = build_abs()
    p["then"].ops.pop()  # drop the then-region's scf.yield
    with pytest.raises(VerificationError, match="scf.yield"):
        verify(m)


def test_verifier_rejects_while_without_condition():
    m, p = build_halvings()
    before = p["before"]
    cond = before.ops[-1]
    before.ops[-1] = Op("scf.yield", list(cond.operands[1:]), [])
    before.ops[-1].parent = before
    with pytest.raises(VerificationError, match="scf.condition"):
        verify(m)


def _callee_and_caller(arg_type):
    g = Func("g", [F64], [F64], ["y"])
    gb = Builder(g.body.block)
    ret(gb, gb.value("arith.mulf", g.args[0], g.args[0]))
    f = Func("f", [arg_type], [F64], ["a"])
    fb = Builder(f.body.block)
    call = fb.create("func.call", [f.args[0]], {"callee": "g"}, result_types=[F64])
    ret(fb, call.result)
    return Module([f, g])


def test_verifier_accepts_call_and_interpreter_runs_it():
    m = _callee_and_caller(F64)
    verify(m)
    assert interpret(m, "f", [3.0]) == [9.0]
    assert "func.call @g(" in print_module(m)


def test_verifier_rejects_call_with_wrong_argument_types():
    m = _callee_and_caller(I64)
    with pytest.raises(VerificationError, match="func.call"):
        verify(m)


def test_verifier_rejects_call_to_unknown_function():
    m = _callee_and_caller(F64)
    del m.funcs["g"]
    with pytest.raises(VerificationError, match="callee"):
        verify(m)


# --- the printer ------------------------------------------------------------------------------

def _const_text(value, type):
    f = Func("c", [], [type])
    b = Builder(f.body.block)
    ret(b, b.const(value, type))
    return print_module(Module([f]))


@pytest.mark.parametrize("value, text", [
    (1.0, "arith.constant 1.00000000000000000e+00 : f64"),
    (0.1, "arith.constant 1.00000000000000006e-01 : f64"),
    (-2.5e-300, "arith.constant -2.49999999999999998e-300 : f64"),
    (0.0, "arith.constant 0.00000000000000000e+00 : f64"),
    (math.inf, "arith.constant 0x7FF0000000000000 : f64"),
    (-math.inf, "arith.constant 0xFFF0000000000000 : f64"),
    (math.nan, "arith.constant 0x7FF8000000000000 : f64"),
])
def test_float_constants_print_like_mlir(value, text):
    assert text in _const_text(value, F64)


def test_format_float_always_has_a_dot_and_round_trips():
    for v in (1.0, 3.0, 1e300, 5e-324, 123456789.0, -0.0, 2.0 ** 52):
        s = format_float(v)
        assert "." in s and s == "%.17e" % v
        assert float(s) == v and math.copysign(1, float(s)) == math.copysign(1, v)
    assert format_float(-math.nan) == "0x7FF8000000000000"


def test_int_and_bool_constants():
    assert "arith.constant 42 : i64" in _const_text(42, I64)
    assert "arith.constant -7 : i64" in _const_text(-7, I64)
    assert re.search(r"= arith\.constant true$", _const_text(True, I1), re.M)
    assert re.search(r"= arith\.constant false$", _const_text(False, I1), re.M)


def test_cmp_predicates_print_by_name():
    def f(x, y, n, k):
        return x < y, x >= y, x == y, x != y, n <= k, n > k

    text = print_module(lower(f, F64, F64, I64, I64))
    for pred in ("olt", "oge", "oeq", "une"):
        assert re.search(rf"arith\.cmpf {pred}, %\w+, %\w+ : f64", text), pred
    for pred in ("sle", "sgt"):
        assert re.search(rf"arith\.cmpi {pred}, %\w+, %\w+ : i64", text), pred


def test_scf_if_syntax():
    m, _ = build_abs()
    text = print_module(m)
    assert re.search(r"%\w+ = scf\.if %\w+ -> \(f64\) \{", text)
    assert "} else {" in text
    assert "func.func @absf(%x: f64) -> f64 {" in text
    assert re.search(r"return %\w+ : f64", text)


def test_scf_for_syntax_from_for_range():
    def f(x, n):
        s = 0.0
        for i in range(n):
            s += x * i
        return s

    text = print_module(lower(f, F64, I64))
    assert re.search(r"scf\.for %\w+ = %\w+ to %\w+ step %\w+ iter_args\(%\w+ = %\w+\) "
                     r"-> \(f64\) : i64 \{", text), text
    assert "scf.yield" in text


def test_scf_while_syntax():
    m, _ = build_halvings()
    text = print_module(m)
    assert re.search(r"%\w+, %\w+ = scf\.while \(%\w+ = %x, %\w+ = %\w+\) : "
                     r"\(f64, i64\) -> \(f64, i64\) \{", text), text
    assert re.search(r"scf\.condition\(%\w+\) %\w+, %\w+ : f64, i64", text)
    assert "} do {" in text
    assert re.search(r"\^bb0\(%\w+: f64, %\w+: i64\):", text)


def test_value_names_are_unique():
    m, _ = build_halvings()
    text = print_module(m)
    defined = re.findall(r"^\s*(%[\w$.]+(?:, %[\w$.]+)*) = ", text, re.M)
    names = [n for group in defined for n in group.split(", ")]
    names += re.findall(r"(%[\w$.]+): ", text)  # arguments
    assert len(names) == len(set(names)), names


# --- the interpreter --------------------------------------------------------------------------

def test_interpreter_wraps_i64_arithmetic():
    def mul(a, b):
        return a * b

    def add(a, b):
        return a + b

    def sub(a, b):
        return a - b

    assert run(lower(mul, I64, I64), 2 ** 62, 4) == 0
    assert run(lower(mul, I64, I64), 2 ** 62, 2) == -2 ** 63
    assert run(lower(mul, I64, I64), 3, 7) == 21
    assert run(lower(add, I64, I64), 2 ** 63 - 1, 1) == -2 ** 63
    assert run(lower(sub, I64, I64), -2 ** 63, 1) == 2 ** 63 - 1


def test_interpreter_int_power_wraps():
    def p(a, b):
        return a ** b

    m = lower(p, I64, I64)
    assert run(m, 3, 4) == 81
    assert run(m, 2, 64) == 0
    assert run(m, 3, 41) == (3 ** 41 + 2 ** 63) % 2 ** 64 - 2 ** 63


def _divmod_py(a, b):
    return a // b, a % b


@pytest.mark.parametrize("a, b", [(7, 2), (-7, 2), (7, -2), (-7, -2), (6, 3), (-6, 3), (0, -5),
                                  (1, -2 ** 63), (-2 ** 63, 3)])
def test_interpreter_int_floordiv_mod_follow_python(a, b):
    m = lower(_divmod_py, I64, I64)
    assert run(m, a, b) == (a // b, a % b)


@pytest.mark.parametrize("a, b", [(7.5, 2.0), (-7.5, 2.0), (7.5, -2.0), (-7.5, -2.0),
                                  (6.0, 3.0), (-6.0, 3.0), (1e-300, -1.0), (0.3, 0.1)])
def test_interpreter_float_floordiv_mod_follow_python(a, b):
    m = lower(_divmod_py, F64, F64)
    assert _same(run(m, a, b), (a // b, a % b))


def test_interpreter_zero_division():
    m = lower(_divmod_py, I64, I64)
    with pytest.raises(ZeroDivisionError):
        run(m, 1, 0)
    m = lower(_divmod_py, F64, F64)
    with pytest.raises(ZeroDivisionError):
        run(m, 1.0, 0.0)


# --- canonicalize -----------------------------------------------------------------------------

def c_consts(x):
    a = 2.0 * 3.0 + 1.0
    k = 10 // 3 + 7 % 4 - 2 ** 5
    if a > 5.0:
        y = x * a
    else:
        y = x - a
    return y + k


def c_dead_branch(x, n):
    debug = False
    s = 0.0
    for i in range(n):
        if debug:
            s += 1000.0
        s += x * i
        t = s * 2.0  # dead
    if 1 < 0:
        s = -1.0
    return s


def c_early(x):
    if x < 0:
        return -x
    return x


def c_loop_flags(x, n):
    s = 0.0
    for i in range(n):
        if s > x:
            break
        if i % 3 == 0:
            continue
        s += i * 0.5
    return s, n


def c_mixed(x, n, b):
    lim = 2 ** 10
    m = min(n, lim) if b else max(n, -lim)
    r = math.sqrt(4.0) + abs(-3) + float(int(2.7))
    while x > r:
        x -= 1.5
    return x + m, (not b) or n > 3


CANON_CASES = [
    (c_consts, (F64,), [(1.5,), (-2.0,), (0.0,), (math.inf,)]),
    (c_dead_branch, (F64, I64), [(1.5, 0), (0.5, 5), (-2.0, 3)]),
    (c_early, (F64,), [(-2.5,), (3.0,), (-0.0,), (math.nan,)]),
    (c_loop_flags, (F64, I64), [(10.0, 20), (0.0, 5), (100.0, 10), (1.0, 0)]),
    (c_mixed, (F64, I64, I1), [(10.0, 5, True), (2.0, -3000, False), (8.5, 2000, True)]),
]


@pytest.mark.parametrize("fn, types, inputs", CANON_CASES, ids=[c[0].__name__ for c in CANON_CASES])
def test_canonicalize_preserves_results(fn, types, inputs):
    m = lower(fn, *types)
    verify(m)
    before = [run(m, *args) for args in inputs]
    for args, v in zip(inputs, before):
        py = fn(*args)
        assert _same(v, py) or v == py, (args, v, py)
    n_before = sum(1 for _ in next(iter(m)).walk())
    canonicalize(m)
    verify(m)
    after = [run(m, *args) for args in inputs]
    for args, v, w in zip(inputs, before, after):
        assert _same(v, w), (args, v, w)
    n_after = sum(1 for _ in next(iter(m)).walk())
    assert n_after < n_before


def _constant_fed_ops(func):
    """Foldable ops whose operands are all constants (canonicalize should have folded them)."""
    out = []
    for op in func.walk():
        od = OPS.get(op.name)
        if od is None or od.eval is None or not od.pure or op.name == "arith.constant":
            continue
        if op.regions or not op.operands:
            continue
        if all(getattr(getattr(v, "op", None), "name", None) == "arith.constant"
               for v in op.operands):
            out.append(op)
    return out


@pytest.mark.parametrize("fn, types, inputs", CANON_CASES, ids=[c[0].__name__ for c in CANON_CASES])
def test_canonicalize_folds_constants(fn, types, inputs):
    m = lower(fn, *types)
    canonicalize(m)
    func = next(iter(m))
    assert _constant_fed_ops(func) == [], print_module(m)


def test_canonicalize_folds_to_a_single_constant():
    m = lower(c_consts, F64)
    before = _constant_fed_ops(next(iter(m)))
    assert before, "the frontend should leave constant arithmetic to canonicalize"
    canonicalize(m)
    text = print_module(m)
    assert "scf.if" not in text  # `a > 5.0` is a constant condition
    assert "arith.mulf" in text  # x * a remains
    assert "arith.constant 7.00000000000000000e+00 : f64" in text  # a = 2*3+1
    assert "arith.constant -2.60000000000000000e+01 : f64" in text  # k = 3 + 3 - 32, as float
    assert "arith.floordivsi" not in text and "arith.remsi" not in text
    assert "math.ipowi" not in text


def test_canonicalize_removes_dead_code():
    m = lower(c_dead_branch, F64, I64)
    canonicalize(m)
    text = print_module(m)
    assert "1.00000000000000000e+03" not in text  # the `if debug` branch
    assert "scf.if" not in text
    assert text.count("arith.mulf") == 1  # `t = s * 2.0` is gone, x * i stays


def test_canonicalize_drops_unused_scf_if_results():
    m = lower(c_early, F64)
    text = print_module(m)
    assert re.search(r"%ret, %rv0 = scf\.if", text), text  # the frontend's return flag
    canonicalize(m)
    text = print_module(m)
    assert "%ret" not in text
    assert re.search(r"%\w+ = scf\.if %\w+ -> \(f64\)", text), text
    assert run(m, -4.0) == 4.0 and run(m, 4.0) == 4.0


def test_canonicalize_drops_unused_result_of_hand_built_if():
    m, p = build_abs()
    f, if_op = p["func"], p["if_op"]
    # give the scf.if a second result that nobody uses
    for region in if_op.regions:
        y = region.block.ops[-1]
        y.operands = y.operands + [p["x"]]
    if_op.results.append(type(if_op.result)(F64, if_op, 1))
    verify(m)
    assert re.search(r"%\w+, %\w+ = scf\.if", print_module(m))
    canonicalize(m)
    verify(m)
    assert len(if_op.results) == 1
    assert all(len(r.block.ops[-1].operands) == 1 for r in if_op.regions)
    assert re.search(r"%\w+ = scf\.if %\w+ -> \(f64\)", print_module(m))
    assert run(m, -1.5) == 1.5


def test_canonicalize_inlines_constant_if_and_keeps_effects():
    def f(a, b):
        if True:
            q = a // b
        return 1

    m = lower(f, I64, I64)
    canonicalize(m)
    verify(m)
    # a // b may raise: its zero check must survive even though q is unused
    assert run(m, 3, 2) == 1
    with pytest.raises(ZeroDivisionError):
        run(m, 3, 0)


# --- frontend lowering shapes -----------------------------------------------------------------

def loop_with_break(n):
    s = 0
    for i in range(n):
        if i * i > 50:
            break
        s += i
    return s


def loop_without_break(n):
    s = 0
    for i in range(n):
        if i % 2 == 0:
            continue
        s += i
    return s


def early_return(x):
    if x < 0:
        return -x
    return x


def test_for_with_break_lowers_to_scf_while():
    m = lower(loop_with_break, I64)
    text = print_module(m)
    assert "scf.while" in text and "scf.for" not in text
    assert [run(m, n) for n in (0, 5, 100)] == [loop_with_break(n) for n in (0, 5, 100)]


def test_for_without_break_lowers_to_scf_for():
    m = lower(loop_without_break, I64)
    text = print_module(m)
    assert "scf.for" in text and "scf.while" not in text
    assert [run(m, n) for n in (0, 5, 100)] == [loop_without_break(n) for n in (0, 5, 100)]


def test_early_return_needs_no_loop_and_one_return():
    m = lower(early_return, F64)
    for module in (m, canonicalize(m)):
        verify(module)
        text = print_module(module)
        func = next(iter(module))
        assert "scf.while" not in text and "scf.for" not in text
        assert sum(op.name == "func.return" for op in func.walk()) == 1
        assert len(re.findall(r"^\s*return ", text, re.M)) == 1
        assert run(module, -3.0) == 3.0 and run(module, 2.0) == 2.0


def test_ir_layers_do_not_load_llvm():
    code = ("import sys\n"
            "from lldiff.frontend import get_source, lower_function\n"
            "from lldiff.ir import I64, Module, interpret, print_module, verify\n"
            "from lldiff.passes import canonicalize\n"
            "import tests_ir_probe as p\n"
            "f, _ = lower_function(get_source(p.g), [I64], 'g', lambda o, t: None)\n"
            "m = canonicalize(verify(Module([f])))\n"
            "assert interpret(m, 'g', [5]) == [20], interpret(m, 'g', [5])\n"
            "print('LLVM' if 'llvmlite' in sys.modules else 'NO-LLVM')\n")
    probe = "def g(n):\n    s = 0\n    for i in range(n):\n        s += 2 * i\n    return s\n"
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "tests_ir_probe.py"), "w") as fh:
            fh.write(probe)
        env = dict(os.environ, PYTHONPATH=d + os.pathsep + os.environ.get("PYTHONPATH", ""))
        p = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env,
                           capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "NO-LLVM" in p.stdout


# --- regression: canonicalize folding a constant scf.if whose region holds foldable ops ---
# (found by tests/test_random_programs.py: ops hoisted out of the if were folded a second time
# in their old, detached block, leaving uses of values defined nowhere)

def _const_if_mod(a, b, n):
    u0 = a
    for i in range(n):
        if True or u0 <= a:
            u0 %= 0.5
    return u0


def _const_if_range(a, b, n):
    k0 = n
    if 1 < 1 == 1:
        pass
    else:
        for i0 in range(1, 5, n):
            k0 = 1
    return k0


@pytest.mark.parametrize("fn", [_const_if_mod, _const_if_range])
@pytest.mark.parametrize("args", [(1.5, 2.0, 3), (-0.5, 1.0, 2), (2.0, -1.0, -2)])
def test_constant_if_with_foldable_body(fn, args):
    f = lldiff.jit(fn, opt=0, verify=True)
    want = fn(*args)
    assert f.interpret(*args) == want
    assert f(*args) == want
