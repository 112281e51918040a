"""Compile-error tests: unsupported constructs must raise lldiff.CompileError.

Each construct lives in its own module-level function below.  The offending
line carries a trailing ``# ERR`` comment; the expected line number is found
from the source at test time (nothing is hard-coded), and the expected column
is the 1-based position of a marker substring on that line.

Conventions checked for every case (see ``_check_error``):
  * ``lldiff.jit(fn)`` itself does not raise (compilation is lazy); the first
    call raises ``lldiff.CompileError`` (never another exception type), and a
    second call raises it again;
  * ``err.filename`` ends with ``test_errors.py``, ``err.lineno`` is the
    ``# ERR`` line, ``err.col`` (1-based) is the column of the offending node;
  * ``str(err)`` starts with ``test_errors.py:LINE:COL: ``, shows the stripped
    source line followed by a caret line whose ``^`` sits under the offending
    column, and names the construct (case-insensitive substring, searched in
    the text with the source/caret lines removed);
  * unsupported constructs say "not supported"; undefined names say
    "name '...' is not defined".
"""

import inspect
import math
import re
from typing import NamedTuple, Optional, Tuple, Union

import pytest

import lldiff

THIS_FILE_SUFFIX = "test_errors.py"
ERR_TAG = "# ERR"


# ---------------------------------------------------------------------------
# Helpers: locate the ``# ERR`` line of a function and the expected column.
# ---------------------------------------------------------------------------

def err_line(fn):
    """Return (absolute lineno, raw source line) of the single `# ERR` line in fn."""
    lines, start = inspect.getsourcelines(fn)
    hits = [i for i, text in enumerate(lines) if text.rstrip().endswith(ERR_TAG)]
    assert len(hits) == 1, f"{fn.__name__}: expected exactly one '{ERR_TAG}' line, got {len(hits)}"
    idx = hits[0]
    return start + idx, lines[idx].rstrip("\n")


def expected_col(line, marker):
    """1-based column of the first occurrence of marker in line (None if marker is None)."""
    if marker is None:
        return None
    code = line[: line.rindex(ERR_TAG)]
    assert marker in code, f"marker {marker!r} not found in line {line!r}"
    return code.index(marker) + 1


# ---------------------------------------------------------------------------
# Helpers used by the constructs (plain Python, deliberately NOT jitted).
# ---------------------------------------------------------------------------

def _plain_py(a=1.0):
    return a + 1.0


_MODULE_LIST = [1.0, 2.0]
G_COUNTER = 0


# ---------------------------------------------------------------------------
# The constructs.  One function per construct; exactly one `# ERR` line each.
# ---------------------------------------------------------------------------

def gen_yield(x):
    yield x  # ERR


def gen_yield_from(n):
    yield from range(n)  # ERR


def try_except(x):
    try:  # ERR
        y = x + 1.0
    except ZeroDivisionError:
        y = 0.0
    return y


def try_finally(x):
    y = 0.0
    try:  # ERR
        y = x + 1.0
    finally:
        y = y + 1.0
    return y


def with_stmt(x):
    with x:  # ERR
        y = x
    return y


def lambda_expr(x):
    g = lambda y: y + 1.0  # ERR
    return x


def _make_nonlocal_closure():
    counter = 0.0

    def nonlocal_closure(x):
        nonlocal counter  # ERR
        counter += x
        return counter

    return nonlocal_closure


nonlocal_closure = _make_nonlocal_closure()


def global_stmt(x):
    global G_COUNTER  # ERR
    G_COUNTER = x
    return x


def list_literal(x):
    y = [x, 1.0]  # ERR
    return x


def dict_literal(x):
    y = {1: x}  # ERR
    return x


def set_literal(x):
    y = {x, 1.0}  # ERR
    return x


def list_comprehension(n):
    y = [i for i in range(n)]  # ERR
    return n


def string_literal(x):
    s = "abc"  # ERR
    return x


def fstring(x):
    s = f"{x}"  # ERR
    return x


def bytes_literal(x):
    s = b"abc"  # ERR
    return x


def none_value(x):
    y = None  # ERR
    return x


def class_def(x):
    class C:  # ERR
        pass
    return x


def nested_def(x):
    def inner(y):  # ERR
        return y + 1.0
    return x


def import_stmt(x):
    import math  # ERR
    return math.sin(x)


def import_from_stmt(x):
    from math import sin  # ERR
    return sin(x)


def assert_stmt(x):
    assert x > 0.0  # ERR
    return x


def del_stmt(x):
    y = x
    del y  # ERR
    return x


def raise_stmt(x):
    if x > 0.0:
        raise ValueError  # ERR
    return x


async def async_def(x):  # ERR
    await x
    return x


def starred_call(x, y):
    return math.hypot(*(x, y))  # ERR


def keyword_arg_supported_fn(x):
    return math.copysign(x, y=1.0)  # ERR


def print_call(x):
    print(x)  # ERR
    return x


def print_keyword(x):
    print(x, end="")  # ERR
    return x


def len_call(x):
    return len(x)  # ERR


def undefined_function(x):
    return undefined_fn(x)  # ERR


def plain_python_call(x):
    return _plain_py(x)  # ERR


def plain_python_keyword_only_call(x):
    return _plain_py(a=x)  # ERR


def attribute_non_module(x):
    return x.real  # ERR


def method_call(x):
    return x.conjugate()  # ERR


def for_non_range(x):
    s = 0.0
    for c in (1.0, 2.0):  # ERR
        s += c
    return s + x


def for_else(n):
    s = 0
    for i in range(n):  # ERR
        s += i
    else:
        s = -1
    return s


def while_else(n):
    i = 0
    while i < n:  # ERR
        i += 1
    else:
        i = -1
    return i


def walrus(x):
    if (y := x + 1.0) > 2.0:  # ERR
        return y
    return x


def matmul(x, y):
    return x @ y  # ERR


def bitand_float(x):
    return x & 1.0  # ERR


def bitand_int(n):
    return n & 1  # ERR


def bitor_int(n):
    return n | 1  # ERR


def bitxor_int(n):
    return n ^ 1  # ERR


def lshift_int(n):
    return n << 1  # ERR


def rshift_int(n):
    return n >> 1  # ERR


def invert_int(n):
    return ~n  # ERR


def is_op(x, y):
    if x is y:  # ERR
        return 1.0
    return 0.0


def is_not_op(x, y):
    if x is not y:  # ERR
        return 1.0
    return 0.0


def in_op(x, y):
    if x in y:  # ERR
        return 1.0
    return 0.0


def not_in_op(x, y):
    if x not in y:  # ERR
        return 1.0
    return 0.0


def subscript_scalar(x):
    return x[0]  # ERR


def slice_scalar(x):
    return x[1:2]  # ERR


def range_four_args(n):
    s = 0
    for i in range(0, n, 1, 2):  # ERR
        s += i
    return s


def factorial_of_float(x):
    return math.factorial(x)  # ERR


def undefined_variable(x):
    return x + undefined_thing  # ERR


def used_before_assignment(x):
    z = y + 1.0  # ERR
    y = 2.0
    return z


def complex_literal(x):
    return x + 1j  # ERR


def string_comparison(x):
    if "a" == "b":  # ERR
        return x
    return x


def tuple_as_value(x):
    t = (x, 1.0)  # ERR
    return x


def inconsistent_tuple_returns(x):
    if x > 0.0:
        return x, x
    return x, x, x  # ERR


def match_stmt(n):
    match n:  # ERR
        case 1:
            return 1
        case _:
            return 0


def module_list_global(x):
    return x + _MODULE_LIST  # ERR


# ---------------------------------------------------------------------------
# The table.
# ---------------------------------------------------------------------------

UNSUPPORTED = "unsupported"   # message must contain "not supported"
UNDEFINED = "undefined"       # message must contain "is not defined"
OTHER = "other"               # only the message substring is checked


class Case(NamedTuple):
    fn: object
    args: tuple
    # substring of the # ERR line at which the offending node starts (None: column not checked);
    # a tuple of substrings means any of those columns is accepted.
    marker: Union[str, Tuple[str, ...], None]
    msg: str                  # case-insensitive substring expected in the message
    kind: str = UNSUPPORTED
    eager_ok: bool = False    # may already raise at lldiff.jit(fn) time (e.g. async def)
    err_fn: Optional[object] = None  # function holding the # ERR line, if not fn itself


CASES = [
    Case(gen_yield, (1.5,), "yield", "yield", eager_ok=True),
    Case(gen_yield_from, (3,), "yield from", "yield", eager_ok=True),
    Case(try_except, (1.5,), "try", "try"),
    Case(try_finally, (1.5,), "try", "try"),
    Case(with_stmt, (1.5,), "with", "with"),
    Case(lambda_expr, (1.5,), "lambda", "lambda"),
    Case(nonlocal_closure, (1.5,), "nonlocal", "nonlocal"),
    Case(global_stmt, (1.5,), "global", "global"),
    Case(list_literal, (1.5,), "[x, 1.0]", "list"),
    Case(dict_literal, (1.5,), "{1: x}", "dict"),
    Case(set_literal, (1.5,), "{x, 1.0}", "set"),
    Case(list_comprehension, (3,), "[i for", "comprehension"),
    Case(string_literal, (1.5,), '"abc"', "string"),
    Case(fstring, (1.5,), 'f"', "string"),
    Case(bytes_literal, (1.5,), 'b"abc"', "bytes"),
    Case(none_value, (1.5,), "None", "None"),
    Case(class_def, (1.5,), "class", "class"),
    Case(nested_def, (1.5,), "def", "nested function"),
    Case(import_stmt, (1.5,), "import", "import"),
    Case(import_from_stmt, (1.5,), "from", "import"),
    Case(assert_stmt, (1.5,), "assert", "assert"),
    Case(del_stmt, (1.5,), "del", "del"),
    Case(raise_stmt, (1.5,), "raise", "raise"),
    Case(async_def, (1.5,), "async", "async", eager_ok=True),
    Case(starred_call, (1.5, 2.5), "*(x, y)", "starred"),
    Case(keyword_arg_supported_fn, (1.5,), "y=1.0", "keyword"),
    Case(print_call, (1.5,), "print", "print"),
    Case(print_keyword, (1.5,), "print", "print"),
    Case(len_call, (1.5,), "len", "len"),
    Case(undefined_function, (1.5,), "undefined_fn", "name 'undefined_fn' is not defined", UNDEFINED),
    Case(plain_python_call, (1.5,), "_plain_py", "_plain_py"),
    Case(plain_python_keyword_only_call, (1.5,), "_plain_py", "_plain_py"),
    Case(attribute_non_module, (1.5,), "x.real", "attribute"),
    Case(method_call, (1.5,), "x.conjugate", "conjugate"),
    Case(for_non_range, (1.5,), ("(1.0, 2.0)", "for"), "range"),
    Case(for_else, (3,), "for", "else"),
    Case(while_else, (3,), "while", "else"),
    Case(walrus, (1.5,), "y :=", ":="),
    Case(matmul, (1.5, 2.5), "x @ y", "@"),
    Case(bitand_float, (1.5,), "x & 1.0", "&"),
    Case(bitand_int, (3,), "n & 1", "&"),
    Case(bitor_int, (3,), "n | 1", "|"),
    Case(bitxor_int, (3,), "n ^ 1", "^"),
    Case(lshift_int, (3,), "n << 1", "<<"),
    Case(rshift_int, (3,), "n >> 1", ">>"),
    Case(invert_int, (3,), "~n", "~"),
    Case(is_op, (1.5, 2.5), "x is y", "'is'"),
    Case(is_not_op, (1.5, 2.5), "x is not y", "'is not'"),
    Case(in_op, (1.5, 2.5), "x in y", "'in'"),
    Case(not_in_op, (1.5, 2.5), "x not in y", "'not in'"),
    Case(subscript_scalar, (1.5,), "x[0]", "subscript"),
    Case(slice_scalar, (1.5,), "x[1:2]", "slic"),
    Case(range_four_args, (3,), "range", "range"),
    Case(factorial_of_float, (1.5,), "math.factorial", "factorial"),
    Case(undefined_variable, (1.5,), "undefined_thing", "name 'undefined_thing' is not defined", UNDEFINED),
    Case(used_before_assignment, (1.5,), "y + 1.0", "'y'", OTHER),
    Case(complex_literal, (1.5,), "1j", "complex"),
    Case(string_comparison, (1.5,), '"a"', "string"),
    Case(tuple_as_value, (1.5,), "(x, 1.0)", "tuple"),
    Case(inconsistent_tuple_returns, (1.5,), "return", "return"),
    Case(match_stmt, (3,), "match", "match"),
    Case(module_list_global, (1.5,), "_MODULE_LIST", "_MODULE_LIST"),
]


# ---------------------------------------------------------------------------
# Checking logic.
# ---------------------------------------------------------------------------

_CARET_RE = re.compile(r"^\s*\^[\^~]*\s*$")


def _expected_cols(line, marker):
    if marker is None:
        return None
    markers = marker if isinstance(marker, tuple) else (marker,)
    return {expected_col(line, m) for m in markers}


def _check_error(err, case):
    holder = case.err_fn if case.err_fn is not None else case.fn
    lineno, line = err_line(holder)
    cols = _expected_cols(line, case.marker)
    name = holder.__name__

    assert isinstance(err, lldiff.CompileError)
    assert isinstance(err, Exception)
    assert str(err.filename).endswith(THIS_FILE_SUFFIX), (name, err.filename)
    assert err.lineno == lineno, (name, err.lineno, lineno, line)
    assert isinstance(err.col, int) and err.col >= 1, (name, err.col)
    if cols is not None:
        assert err.col in cols, (name, err.col, sorted(cols), line)
    assert isinstance(err.message, str) and err.message.strip(), (name, err.message)

    text = str(err)
    lines = text.splitlines()
    assert lines, name
    header = f"{THIS_FILE_SUFFIX}:{lineno}:{err.col}:"
    assert header in lines[0], (name, lines[0], header)
    assert err.message.splitlines()[0].strip() in text, (name, err.message, text)

    # The (stripped) source line, then a caret line pointing at the column.
    stripped = line.strip()
    src_idx = [i for i, ln in enumerate(lines) if stripped in ln and i > 0]
    assert src_idx, f"{name}: source line {stripped!r} not shown in:\n{text}"
    i = src_idx[0]
    shown = lines[i]
    assert i + 1 < len(lines) and _CARET_RE.match(lines[i + 1]), \
        f"{name}: no caret line after the source line in:\n{text}"
    caret = lines[i + 1]
    indent = len(line) - len(line.lstrip())
    want_caret = shown.index(stripped) + (err.col - 1 - indent)
    assert caret.index("^") == want_caret, f"{name}: caret misplaced in:\n{text}"

    # The construct must be named outside the echoed source and caret lines.
    rest = "\n".join(ln for j, ln in enumerate(lines) if j not in (i, i + 1)).lower()
    assert case.msg.lower() in rest, f"{name}: {case.msg!r} not in message:\n{text}"
    if case.kind == UNSUPPORTED:
        assert "not supported" in rest, f"{name}: 'not supported' missing in:\n{text}"
    elif case.kind == UNDEFINED:
        assert "is not defined" in rest, f"{name}: 'is not defined' missing in:\n{text}"


def _compile_and_call(case):
    """Return the CompileError raised by jitting+calling case.fn (lazy unless eager_ok)."""
    if case.eager_ok:
        with pytest.raises(lldiff.CompileError) as info:
            lldiff.jit(case.fn)(*case.args)
        return info.value
    jitted = lldiff.jit(case.fn)  # must not raise: compilation happens at first call
    with pytest.raises(lldiff.CompileError) as info:
        jitted(*case.args)
    first = info.value
    # A failed compile must not be cached as success nor crash on retry.
    with pytest.raises(lldiff.CompileError) as info2:
        jitted(*case.args)
    assert info2.value.lineno == first.lineno
    assert info2.value.col == first.col
    return first


@pytest.mark.parametrize("case", CASES, ids=[c.fn.__name__ for c in CASES])
def test_unsupported_construct(case):
    err = _compile_and_call(case)
    _check_error(err, case)


def test_enough_constructs():
    assert len(CASES) >= 30
    assert len({c.fn.__name__ for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.fn.__name__ for c in CASES])
def test_markers_are_consistent(case):
    # Sanity check of the table itself (independent of the compiler).
    holder = case.err_fn if case.err_fn is not None else case.fn
    lineno, line = err_line(holder)
    assert inspect.getsourcefile(holder).endswith(THIS_FILE_SUFFIX)
    with open(inspect.getsourcefile(holder)) as f:
        assert f.read().splitlines()[lineno - 1] == line
    _expected_cols(line, case.marker)


# ---------------------------------------------------------------------------
# Errors inside a jitted callee report the callee's location.
# ---------------------------------------------------------------------------

def _bad_callee(x):
    y = [x, 2.0]  # ERR
    return x


_jit_bad_callee = lldiff.jit(_bad_callee)


def caller_of_bad_callee(x):
    return _jit_bad_callee(x) + 1.0


def test_error_in_callee_reports_callee_location():
    case = Case(caller_of_bad_callee, (1.5,), "[x, 2.0]", "list", err_fn=_bad_callee)
    err = _compile_and_call(case)
    _check_error(err, case)


def test_error_in_callee_direct_call():
    case = Case(_bad_callee, (1.5,), "[x, 2.0]", "list")
    err = _compile_and_call(case)
    _check_error(err, case)


# ---------------------------------------------------------------------------
# Other entry points and state after an error.
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("case", [c for c in CASES if c.fn in (try_except, list_literal, undefined_variable)],
                         ids=lambda c: c.fn.__name__)
def test_interpret_raises_compile_error(case):
    jitted = lldiff.jit(case.fn)
    with pytest.raises(lldiff.CompileError) as info:
        jitted.interpret(*case.args)
    _check_error(info.value, case)


def _fine(x):
    return x * 2.0 + 1.0


def test_compiler_usable_after_errors():
    for case in CASES[:5]:
        try:
            lldiff.jit(case.fn)(*case.args)
        except lldiff.CompileError:
            pass
    assert lldiff.jit(_fine)(1.5) == 4.0


def test_compile_error_is_exception_subclass():
    assert issubclass(lldiff.CompileError, Exception)
