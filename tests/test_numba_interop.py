"""numba interop (lldiff/numba_ext.py): lldiff functions and derivatives called from
@numba.njit code equal the Python calls and scipy's derivatives, are inlined (no call left in
numba's optimized IR), raise what the Python call raises, and are found through numba's
extension entry point. The first test fails, naming the missing piece, when a numba upgrade
removes an internal the module relies on."""

import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

numba = pytest.importorskip("numba")

import lldiff  # noqa: E402
from lldiff import numba_ext  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import corpus  # noqa: E402

numba_ext.register()


def test_the_numba_internals_lldiff_uses_are_there():
    """If this fails after upgrading numba, lldiff/numba_ext.py needs porting."""
    from numba.core import cgutils
    from numba.core.registry import cpu_target
    from numba.core.typing.typeof import typeof_impl
    from numba.extending import intrinsic
    assert callable(getattr(typeof_impl, "register", None)), "typeof_impl is singledispatch"
    assert callable(intrinsic)
    assert callable(cpu_target.typing_context.resolve_value_type)
    assert callable(cpu_target.typing_context.refresh)
    codegen = cpu_target.target_context.codegen()
    for name in ("create_library", "_create_empty_module"):
        assert callable(getattr(codegen, name, None)), f"numba codegen lost {name}"
    lib = codegen.create_library("lldiff-probe")
    for name in ("add_llvm_module", "add_linking_library"):
        assert callable(getattr(lib, name, None)), f"numba code library lost {name}"
    ctx = cpu_target.target_context
    for name in ("cast", "make_tuple", "get_dummy_value"):
        assert callable(getattr(ctx, name, None)), f"numba target context lost {name}"
    assert callable(getattr(ctx.call_conv, "return_user_exc", None))
    assert callable(cgutils.get_or_insert_function)
    assert callable(cgutils.alloca_once)


def mul1(x, y):
    return x * y + 1.0


def two_results(x, n, flag):
    if flag:
        return x * n, n % 3 == 0
    return -x, False


def divide(x, n):
    return x / (n - 3)


def with_aux(x, y):
    return x * y + math.exp(x), x - y


f_bessel = lldiff.jit(corpus.besselj)
g_bessel = lldiff.grad(corpus.besselj, 1)
vg_bessel = lldiff.value_and_grad(corpus.besselj, 1)
fwd_bessel = lldiff.jacfwd(corpus.besselj, 1)
f_mul1 = lldiff.jit(mul1)
f_two = lldiff.jit(two_results)
f_div = lldiff.jit(divide)
jg_aux = lldiff.jit_grad(mul1)
g_aux = lldiff.grad(with_aux, (0, 1), has_aux=True)


@numba.njit
def bessel_loop(v, zs):
    out = np.empty((4, zs.size))
    for i in range(zs.size):
        out[0, i] = f_bessel(v, zs[i])
        out[1, i] = g_bessel(v, zs[i])
        value, slope = vg_bessel(v, zs[i])
        out[2, i] = value - out[0, i] + slope
        out[3, i] = fwd_bessel(v, zs[i])
    return out


def test_bessel_and_its_derivatives_from_njit_equal_python_and_scipy():
    from scipy.special import jv, jvp
    zs = np.linspace(0.05, 12.0, 301)
    for v in (0, 2, 5):
        got = bessel_loop(v, zs)
        np.testing.assert_array_equal(got[0], [f_bessel(v, z) for z in zs])
        np.testing.assert_array_equal(got[1], [g_bessel(v, z) for z in zs])
        np.testing.assert_array_equal(got[2], got[1])
        np.testing.assert_array_equal(got[3], [fwd_bessel(v, z) for z in zs])
        # (the series cancels at large z: absolute tolerance)
        np.testing.assert_allclose(got[0], jv(v, zs), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(got[1], jvp(v, zs), rtol=1e-10, atol=1e-12)


@numba.njit
def tuples(x, n, flag, y):
    a, b = f_two(x, n, flag)
    value, grads = jg_aux(x, y)  # (value, (d/dx, d/dy))
    g, aux = g_aux(x, y)
    return a, b, value, grads, g, aux


def test_results_are_what_the_python_call_returns():
    for x, n, flag, y in ((1.5, 6, True, 0.25), (-2.0, 4, False, 3.0)):
        a, b, value, grads, g, aux = tuples(x, n, flag, y)
        assert (a, b) == f_two(x, n, flag) and isinstance(b, bool)
        assert (value, grads) == jg_aux(x, y)
        assert (g, aux) == g_aux(x, y)
        # closed form: d/dx = y + e^x, d/dy = x
        assert g[0] == pytest.approx(y + math.exp(x), rel=1e-15) and g[1] == x


@numba.njit
def converted(x32, n32, xs):
    return f_mul1(x32, n32) + f_div(xs[0], np.int8(5))


def test_numba_numbers_convert_as_numba_converts_them():
    got = converted(np.float32(1.5), np.int32(4), np.array([3.0]))
    assert got == mul1(1.5, 4) + divide(3.0, 5)


@numba.njit
def divide_all(x, ns):
    s = 0.0
    for n in ns:
        s += f_div(x, n)
    return s


def test_exceptions_raise_in_the_njit_caller_as_in_python():
    assert divide_all(1.0, np.array([4, 5])) == 1.5
    with pytest.raises(ZeroDivisionError) as py:
        f_div(1.0, 3)
    with pytest.raises(ZeroDivisionError) as nb:
        divide_all(1.0, np.array([4, 3, 5]))
    assert str(nb.value) == str(py.value)
    with pytest.raises(ValueError, match="factorial"):
        numba.njit(lambda z: f_bessel(-1, z))(1.0)


def test_arrays_are_refused_naming_the_argument():
    with pytest.raises(numba.core.errors.TypingError, match="argument 0 is array"):
        numba.njit(lambda xs: f_mul1(xs, 1.0))(np.ones(3))


@numba.njit
def mul1_loop(xs, y):
    s = 0.0
    for x in xs:
        s += f_mul1(x, y)
    return s


def test_the_call_is_inlined_into_the_numba_loop():
    xs = np.linspace(0, 1, 100)
    assert mul1_loop(xs, 2.0) == pytest.approx(float(np.sum(xs * 2.0 + 1.0)), rel=1e-14)
    llvm = mul1_loop.inspect_llvm(mul1_loop.signatures[0])
    body = llvm[llvm.index("define"):]
    assert "lldiff.numba." not in body.replace("declare", "")  # no call left, inlined
    assert "fmul" in body


def test_numba_finds_lldiff_through_its_extension_entry_point(tmp_path):
    script = textwrap.dedent("""
        import numba, lldiff

        def mul1(x, y):
            return x * y + 1.0

        f = lldiff.jit(mul1)
        g = lldiff.grad(mul1)

        @numba.njit
        def use(x):
            return f(x, 2.0) + g(x, 2.0)

        print(use(3.0))
    """)
    path = tmp_path / "use_lldiff_in_numba.py"
    path.write_text(script)
    r = subprocess.run([sys.executable, str(path)], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert float(r.stdout) == 3.0 * 2.0 + 1.0 + 2.0
