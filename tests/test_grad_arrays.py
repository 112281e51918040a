"""Reverse and forward mode through numpy arrays: gradients with respect to arrays and
scalars against closed forms (hand-written numpy backpropagation) and central finite
differences, and the dot-product identity <grad f, v> = jvp(f, x, v) between the two modes.
"""

import math
import sys

import numpy as np
import pytest

import lldiff


def poorman_norm(x):
    # seeds 004: the l2 norm, abs2 and sqrt as primitives
    nm2 = 0.0
    for i in range(len(x)):
        nm2 += abs(x[i]) ** 2
    return math.sqrt(nm2)


def matvec_tanh(A, v):
    n, m = A.shape[0], A.shape[1]
    y = np.zeros(n)
    for i in range(n):
        for j in range(m):
            y[i] += A[i, j] * v[j]
    s = 0.0
    for i in range(n):
        s += math.tanh(y[i])
    return s


def mlp_loss(W1, b1, W2, b2, x, label):
    """Two layers, tanh, softmax cross-entropy of class `label`."""
    h = np.zeros(W1.shape[0])
    for i in range(W1.shape[0]):
        acc = b1[i]
        for j in range(W1.shape[1]):
            acc += W1[i, j] * x[j]
        h[i] = math.tanh(acc)
    z = np.zeros(W2.shape[0])
    zmax = -1e300
    for k in range(W2.shape[0]):
        acc = b2[k]
        for i in range(W2.shape[1]):
            acc += W2[k, i] * h[i]
        z[k] = acc
        zmax = max(zmax, acc)
    total = 0.0
    for k in range(W2.shape[0]):
        total += math.exp(z[k] - zmax)
    return math.log(total) + zmax - z[label]


def recurrence_in_place(x, c):
    for i in range(1, len(x)):
        x[i] = x[i - 1] * c + math.sin(x[i])
    return x[len(x) - 1]


def cumsum_weighted(x, w):
    for i in range(1, len(x)):
        x[i] += x[i - 1]
    s = 0.0
    for i in range(len(x)):
        s += w[i] * x[i] * x[i]
    return s


def writes_under_if(x, c):
    for i in range(len(x)):
        if x[i] > 0.0:
            x[i] = x[i] * c
        else:
            x[i] = c
    s = 0.0
    for i in range(len(x)):
        s += x[i] * x[i]
    return s


def triangular(A):
    s = 0.0
    for i in range(A.shape[0]):
        for j in range(i + 1):
            s += A[i, j] * A[j, i]
    return s


def overwrite_one_cell(x, c):
    for k in range(5):
        x[0] = math.sin(x[0]) * c + x[1]
    return x[0] * x[1]


@lldiff.jit
def scale_into(out, x, c):
    for i in range(len(x)):
        out[i] = c * x[i]
    return 0


def helper_writes_caller_array(x, c):
    out = np.zeros(len(x))
    scale_into(out, x, c)
    s = 0.0
    for i in range(len(out)):
        s += out[i] * out[i]
    return s


def fill_then_sum_squares(x, c):
    for i in range(len(x)):
        x[i] = c          # a loop whose only work is storing: reversed all the same
    x[0] = 0.0            # an inactive value overwrites a differentiated cell
    s = 0.0
    for i in range(len(x)):
        s += x[i] * x[i]
    return s


def scratch_in_branch(x, c):
    s = 0.0
    if c > 0.0:
        t = np.empty(len(x))
        for i in range(len(x)):
            t[i] = c * x[i]
        for i in range(len(x)):
            s += t[i] * t[i]
    else:
        s = c
    return s


def per_sample_hidden_layer(W, X):
    total = 0.0
    for s in range(X.shape[0]):
        h = np.zeros(W.shape[0])  # a fresh array per sample, holding differentiated values
        for i in range(W.shape[0]):
            acc = 0.0
            for j in range(W.shape[1]):
                acc += W[i, j] * X[s, j]
            h[i] = math.tanh(acc)
        for i in range(W.shape[0]):
            total += h[i] * h[i]
    return total


def _fd(f, args, k, v, h=1e-6):
    """Central difference of f along v in argument k (arrays are copied: f may write)."""
    def at(t):
        a = [np.array(x, copy=True) if isinstance(x, np.ndarray) else x for x in args]
        a[k] = a[k] + t * v
        return f(*a)
    return (at(h) - at(-h)) / (2 * h)


def _grad(f, args, nums):
    copies = [np.array(x, copy=True) if isinstance(x, np.ndarray) else x for x in args]
    return lldiff.grad(f, argnums=nums)(*copies)


def test_poorman_norm_gradient_is_x_over_its_norm():
    rng = np.random.default_rng(0)
    for n in (1, 5, 1000):
        x = rng.normal(size=n)
        g = lldiff.grad(poorman_norm)(x)
        np.testing.assert_allclose(g, x / np.linalg.norm(x), rtol=1e-14, atol=1e-16)
    # nothing is cached: the reverse sweep re-reads x
    after = lldiff.jit(poorman_norm).inspect("vjp", x).split("// after tape")[1]
    assert '"ad.tape' not in after


def test_matvec_tanh_against_backprop():
    rng = np.random.default_rng(1)
    A, v = rng.normal(size=(4, 6)), rng.normal(size=6)
    gA, gv = _grad(matvec_tanh, (A, v), (0, 1))
    dy = 1 - np.tanh(A @ v) ** 2
    np.testing.assert_allclose(gA, np.outer(dy, v), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(gv, A.T @ dy, rtol=1e-13, atol=1e-15)


def test_mlp_softmax_cross_entropy_against_backprop():
    rng = np.random.default_rng(2)
    W1, b1 = rng.normal(size=(5, 3)), rng.normal(size=5)
    W2, b2 = rng.normal(size=(4, 5)), rng.normal(size=4)
    x, label = rng.normal(size=3), 2
    g = _grad(mlp_loss, (W1, b1, W2, b2, x, label), (0, 1, 2, 3, 4))
    # numpy backprop
    a1 = W1 @ x + b1
    h = np.tanh(a1)
    z = W2 @ h + b2
    p = np.exp(z - z.max())
    p /= p.sum()
    dz = p.copy()
    dz[label] -= 1
    dW2, db2 = np.outer(dz, h), dz
    dh = W2.T @ dz
    da1 = dh * (1 - h ** 2)
    dW1, db1, dx = np.outer(da1, x), da1, W1.T @ da1
    for got, want in zip(g, (dW1, db1, dW2, db2, dx)):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
    value = lldiff.jit(mlp_loss)(W1, b1, W2, b2, x, label)
    assert value == pytest.approx(-math.log(p[label]), rel=1e-13)


@pytest.mark.parametrize("fn,make,nums", [
    (recurrence_in_place, lambda r: (r.normal(size=7), 0.8), (0, 1)),
    (cumsum_weighted, lambda r: (r.normal(size=6), r.uniform(0, 1, 6)), (0, 1)),
    (writes_under_if, lambda r: (r.normal(size=8), 1.3), (0, 1)),
    (triangular, lambda r: (r.normal(size=(5, 5)),), (0,)),
    (overwrite_one_cell, lambda r: (r.normal(size=3), 0.9), (0, 1)),
    (helper_writes_caller_array, lambda r: (r.normal(size=4), 1.7), (0, 1)),
    (matvec_tanh, lambda r: (r.normal(size=(3, 4)), r.normal(size=4)), (0, 1)),
    (fill_then_sum_squares, lambda r: (r.normal(size=4), 0.7), (0, 1)),
    (scratch_in_branch, lambda r: (r.normal(size=4), 0.7), (0, 1)),
    (per_sample_hidden_layer, lambda r: (r.normal(size=(3, 4)), r.normal(size=(2, 4))), (0, 1)),
    (mlp_loss, lambda r: (r.normal(size=(3, 2)), r.normal(size=3), r.normal(size=(2, 3)),
                          r.normal(size=2), r.normal(size=2), 1), (0, 1, 2, 3, 4)),
])
def test_gradient_and_dot_product_against_finite_differences(fn, make, nums):
    rng = np.random.default_rng(abs(hash(fn.__name__)) % 2**32)
    args = make(rng)
    g = _grad(fn, args, nums)
    f = lldiff.jit(fn)
    for k, gk in zip(nums, g):
        x = args[k]
        if isinstance(x, np.ndarray):
            for idx in np.ndindex(x.shape):  # every component
                e = np.zeros_like(x)
                e[idx] = 1.0
                assert gk[idx] == pytest.approx(_fd(f, args, k, e), rel=1e-6, abs=1e-7), \
                    (fn.__name__, k, idx)
            v = rng.normal(size=x.shape)  # the dot-product identity
            assert np.sum(gk * v) == pytest.approx(_fd(f, args, k, v), rel=1e-6, abs=1e-7)
        else:
            assert gk == pytest.approx(_fd(f, args, k, 1.0), rel=1e-6, abs=1e-7)
    # forward mode with array tangents: <grad f, v> summed over the arguments
    tangents, expect = [], 0.0
    for i, a in enumerate(args):
        if i in nums:
            v = rng.normal(size=np.shape(a)) if isinstance(a, np.ndarray) else rng.normal()
            tangents.append(v)
            expect += float(np.sum(g[nums.index(i)] * v))
        else:
            tangents.append(None)
    copies = [np.array(a, copy=True) if isinstance(a, np.ndarray) else a for a in args]
    _, dy = lldiff.jvp(f, tuple(copies), tuple(tangents))
    assert dy == pytest.approx(expect, rel=1e-12, abs=1e-14)
    # the native gradient equals the interpreter running the same IR
    types = tuple(f._arg_type(str(i), a) for i, a in enumerate(args))
    mask = [i in nums for i in range(len(args))]
    spec = f._derived(types, "grad", mask, seeded=[True])
    from lldiff.ir import interpret
    shadows_n = [np.zeros_like(args[k]) for k in nums if isinstance(args[k], np.ndarray)]
    shadows_i = [np.zeros_like(args[k]) for k in nums if isinstance(args[k], np.ndarray)]
    copy = lambda: [np.array(a, copy=True) if isinstance(a, np.ndarray) else a for a in args]
    out_n = spec.entry(*copy(), *shadows_n)
    out_i = interpret(spec.module, spec.symbol, copy() + shadows_i)
    out_n = list(out_n) if isinstance(out_n, tuple) else [out_n]
    flat = []
    for o in out_n:
        flat += list(o) if isinstance(o, tuple) else [o]
    assert flat == pytest.approx(out_i, rel=1e-15)
    for a, b in zip(shadows_n, shadows_i):
        np.testing.assert_allclose(a, b, rtol=1e-15, atol=0)


def test_a_value_overwritten_later_is_cached_a_value_never_written_is_re_read():
    f = lldiff.jit(recurrence_in_place)
    after = f.inspect("vjp", np.zeros(4), 0.5).split("// after tape")[1]
    pushes = [l for l in after.splitlines() if '"ad.tape.push"' in l]
    assert pushes, "x[i] is overwritten: its old value must be cached"
    g = lldiff.jit(matvec_tanh)
    after = g.inspect("vjp", np.zeros((2, 2)), np.zeros(2)).split("// after tape")[1]
    # A and v are never written: their elements are re-read, only y's adds are cached
    assert not any("(!ad.tape, f64)" in l and "%A" in l for l in after.splitlines())


def test_gradient_with_respect_to_an_int_array_is_an_error():
    with pytest.raises(TypeError, match="argument 'x' \\(argnums 0\\) is an array of int64"):
        lldiff.grad(poorman_norm)(np.arange(3))


def sin_loss(x, c, n):
    s = 0.0
    for i in range(len(x)):
        s += math.sin(c * x[i]) * n
    return s


def two_sums(x, c):
    s = 0.0
    for i in range(len(x)):
        s += x[i] * c
    return s, s * s


def test_jit_grad_and_vjp_with_arrays():
    x = np.linspace(0, 1, 5)
    g = lldiff.jit_grad(sin_loss)
    value, (gx, gc) = g(x, 0.7, 2)
    assert value == pytest.approx(2 * np.sin(0.7 * x).sum(), rel=1e-14)
    np.testing.assert_allclose(gx, 2 * 0.7 * np.cos(0.7 * x), rtol=1e-14)
    assert gc == pytest.approx(2 * (x * np.cos(0.7 * x)).sum(), rel=1e-14)
    value, (gx, gc) = g(x, 0.7, 2)  # the same again: no fast path that skips the arrays
    assert isinstance(gx, np.ndarray)
    y, pullback = lldiff.vjp(two_sums, x, 0.5)
    s = 0.5 * x.sum()
    assert y == pytest.approx((s, s * s), rel=1e-15)
    gx, gc = pullback((0.0, 1.0))
    np.testing.assert_allclose(gx, 2 * s * 0.5 * np.ones(5), rtol=1e-14)
    assert gc == pytest.approx(2 * s * x.sum(), rel=1e-14)
    assert pullback((1.0, None))[0] == pytest.approx(0.5 * np.ones(5))


def scaled_squares(x, c):
    out = np.empty(len(x))
    for i in range(len(x)):
        out[i] = c * x[i] * x[i]
    return out


def test_array_valued_results_in_both_modes():
    x = np.array([0.5, -1.0, 2.0])
    c = 1.5
    J_x = np.diag(2 * c * x)        # d out / d x
    J_c = x * x                     # d out / d c
    y, dy = lldiff.jvp(scaled_squares, (x, c), (np.ones(3), 0.0))
    np.testing.assert_allclose(y, c * x * x, rtol=1e-15)
    np.testing.assert_allclose(dy, J_x @ np.ones(3), rtol=1e-15)
    np.testing.assert_allclose(lldiff.jacfwd(scaled_squares, 1)(x, c), J_c, rtol=1e-15)
    jx, jc = lldiff.jacrev(scaled_squares, (0, 1))(x, c)
    np.testing.assert_allclose(jx, J_x, rtol=1e-15)
    np.testing.assert_allclose(jc, J_c, rtol=1e-15)
    _, pullback = lldiff.vjp(scaled_squares, x, c)
    w = np.array([1.0, 2.0, -1.0])
    gx, gc = pullback(w)
    np.testing.assert_allclose(gx, J_x.T @ w, rtol=1e-15)
    assert gc == pytest.approx(J_c @ w, rel=1e-15)
    with pytest.raises(ValueError, match="shape"):
        pullback(np.ones(2))
    fx, fc = lldiff.jacfwd(scaled_squares, (0, 1))(x, c)
    np.testing.assert_allclose(fx, J_x, rtol=1e-15)
    np.testing.assert_allclose(fc, J_c, rtol=1e-15)


def test_jacobians_of_matrices_in_both_modes_agree():
    rng = np.random.default_rng(5)
    A, v = rng.normal(size=(4, 6)), rng.normal(size=6)   # 24 + 6 directions: two sweeps
    r = lldiff.jacrev(matvec_tanh, (0, 1))(A, v)
    f = lldiff.jacfwd(matvec_tanh, (0, 1))(A, v)
    assert r[0].shape == f[0].shape == (4, 6) and r[1].shape == f[1].shape == (6,)
    np.testing.assert_allclose(r[0], f[0], rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(r[1], f[1], rtol=1e-13, atol=1e-15)


# --- 50-digit finite differences for the functions without local arrays --------------------

def _mp_version(fn):
    """`fn` re-executed from its source with `math` bound to mpmath, for object arrays of
    mpf: the oracle shares no code with lldiff."""
    import inspect
    import textwrap
    import types as pytypes

    import mpmath
    mpmath_math = pytypes.SimpleNamespace(
        sin=mpmath.sin, cos=mpmath.cos, exp=mpmath.exp, log=mpmath.log, sqrt=mpmath.sqrt,
        tanh=mpmath.tanh, pi=mpmath.pi)
    ns = {"math": mpmath_math, "np": np}
    exec(textwrap.dedent(inspect.getsource(fn)), ns)  # noqa: S102 - the test's own source
    return ns[fn.__name__]


@pytest.mark.parametrize("fn,make,nums", [
    (recurrence_in_place, lambda r: (r.normal(size=7), 0.8), (0, 1)),
    (cumsum_weighted, lambda r: (r.normal(size=6), r.uniform(0, 1, 6)), (0, 1)),
    (writes_under_if, lambda r: (r.normal(size=8), 1.3), (0, 1)),
    (triangular, lambda r: (r.normal(size=(5, 5)),), (0,)),
    (overwrite_one_cell, lambda r: (r.normal(size=3), 0.9), (0, 1)),
    (poorman_norm, lambda r: (r.normal(size=9),), (0,)),
])
def test_directional_derivatives_against_50_digit_finite_differences(fn, make, nums):
    import mpmath
    rng = np.random.default_rng(abs(hash(fn.__name__)) % 2**32 + 1)
    args = make(rng)
    g = _grad(fn, args, nums)
    dirs = {k: (rng.normal(size=np.shape(args[k])) if isinstance(args[k], np.ndarray)
                else rng.normal()) for k in nums}
    ours = sum(float(np.sum(gk * dirs[k])) for k, gk in zip(nums, g))
    mp_fn = _mp_version(fn)
    with mpmath.workdps(50):
        h = mpmath.mpf("1e-20")

        def at(t):
            a = []
            for k, x in enumerate(args):
                if isinstance(x, np.ndarray):
                    m = np.empty(x.shape, dtype=object)
                    for idx in np.ndindex(x.shape):
                        m[idx] = mpmath.mpf(x[idx]) + (t * mpmath.mpf(dirs[k][idx])
                                                       if k in dirs else 0)
                    a.append(m)
                else:
                    a.append(mpmath.mpf(x) + (t * mpmath.mpf(dirs[k]) if k in dirs else 0))
            return mp_fn(*a)
        ref = float((at(h) - at(-h)) / (2 * h))
    assert ours == pytest.approx(ref, rel=1e-12, abs=1e-14)


def test_arrays_made_inside_loops_and_branches():
    rng = np.random.default_rng(8)
    W, X = rng.normal(size=(3, 4)), rng.normal(size=(5, 4))
    H = np.tanh(X @ W.T)
    ref = (2 * H * (1 - H ** 2)).T @ X
    np.testing.assert_allclose(lldiff.grad(per_sample_hidden_layer)(W, X), ref, rtol=1e-13,
                               atol=1e-15)
    V = rng.normal(size=W.shape)
    _, dy = lldiff.jvp(per_sample_hidden_layer, (W, X), (V, None))
    assert dy == pytest.approx(np.sum(ref * V), rel=1e-13)
    x = rng.normal(size=4)
    gx, gc = lldiff.grad(scratch_in_branch, (0, 1))(x, 0.7)
    np.testing.assert_allclose(gx, 2 * 0.7 ** 2 * x, rtol=1e-14)
    assert gc == pytest.approx(2 * 0.7 * np.sum(x * x), rel=1e-14)
    assert lldiff.grad(scratch_in_branch, (0, 1))(x, -0.7)[1] == 1.0


def test_loops_that_only_store_are_reversed():
    x = np.zeros(4)
    assert lldiff.grad(fill_then_sum_squares, argnums=1)(x.copy(), 0.5) == 2 * 3 * 0.5
    assert lldiff.jvp(fill_then_sum_squares, (x.copy(), 0.5), (None, 1.0))[1] == 3.0
    gx, gc = lldiff.grad(fill_then_sum_squares, argnums=(0, 1))(x.copy(), 0.5)
    np.testing.assert_array_equal(gx, np.zeros(4))  # every cell is overwritten


def _writes_then_sums(x, w):
    for i in range(x.shape[0]):
        x[i] = x[i] * w
    s = 0.0
    for i in range(x.shape[0]):
        s += x[i] * x[i]
    return s


def test_repeated_calls_take_the_planned_path_with_the_same_checks():
    """Later calls with the same argument kinds skip the checks the first call passed (call
    plans); what they must still catch, they send to the slow path, which raises."""
    w = 1.5
    g = lldiff.grad(_writes_then_sums, argnums=(1, 0))
    vg = lldiff.value_and_grad(_writes_then_sums, argnums=1)
    jg = lldiff.jit_grad(_writes_then_sums)
    for _ in range(3):  # first call: slow path and plan; then the plan
        x = np.linspace(0.5, 2.0, 7)
        gw, gx = g(x.copy(), w)
        np.testing.assert_allclose(gx, 2 * x * w * w, rtol=1e-15)
        assert gw == pytest.approx(2 * w * np.sum(x * x), rel=1e-14)
        y, gw2 = vg(x.copy(), w)
        assert y == pytest.approx(w * w * np.sum(x * x), rel=1e-14) and gw2 == gw
        y3, (gx3, gw3) = jg(x.copy(), w)
        assert y3 == y and gw3 == gw
        np.testing.assert_array_equal(gx3, gx)
    ro = np.linspace(0.5, 2.0, 7)
    ro.flags.writeable = False
    for fn in (g, vg, jg):
        with pytest.raises(ValueError, match="argument 'x' is read-only"):
            fn(ro, w)
    strided = np.linspace(0.5, 2.0, 13)[::2]  # another layout: another specialization
    contiguous = np.ascontiguousarray(strided)
    ys, (gxs, gws) = jg(strided, w)
    yc, (gxc, gwc) = jg(contiguous, w)
    assert ys == yc and gws == gwc
    np.testing.assert_array_equal(gxs, gxc)
    f32 = np.linspace(0.5, 2.0, 7).astype(np.float32)
    gw4, gx4 = g(f32, w)
    assert gx4.dtype == np.float32 and gw4 == pytest.approx(gw, rel=1e-6)


def test_planned_scalar_calls_equal_first_calls():
    def f(a, n, b):
        return a * math.sin(b) ** n, a + b
    jac = lldiff.jacfwd(f, argnums=(2, 0))
    g = lldiff.grad(lambda_free_first, argnums=(2, 0))
    first = [jac(1.25, 3, 0.5), g(1.25, 3, 0.5)]
    again = [jac(1.25, 3, 0.5), g(1.25, 3, 0.5)]
    assert first == again
    (db, da), (eb, ea) = first[0]
    want = (1.25 * 3 * math.sin(0.5) ** 2 * math.cos(0.5), math.sin(0.5) ** 3)
    assert (db, da) == pytest.approx(want, rel=1e-15) and (eb, ea) == (1.0, 1.0)
    assert jac(1.25, 2, 0.5)[0][1] == pytest.approx(math.sin(0.5) ** 2, rel=1e-15)  # plan
    assert jac(1.25, 2.0, 0.5)[0][1] == pytest.approx(math.sin(0.5) ** 2, rel=1e-15)  # new
    assert first[1] == (db, da)


def lambda_free_first(a, n, b):
    return a * math.sin(b) ** n


def _weighted(x, c, A):
    s = 0.0
    for i in range(A.shape[0]):
        for j in range(A.shape[1]):
            s += A[i, j] * x[j] * c
    return s / c ** 2


def test_the_entry_point_makes_the_gradient_arrays_fresh_on_every_call():
    """Called with the primal arguments alone, a gradient's entry point allocates the zeroed
    arrays the gradients accumulate into (codegen/abi.py `py_alloc`): every call returns new
    arrays, in argument order among the scalars, with the closed-form values."""
    rng = np.random.default_rng(3)
    x, A, c = rng.standard_normal(4), rng.standard_normal((3, 4)), 1.7
    want_x, want_A = A.sum(axis=0) / c, np.outer(np.ones(3), x) / c
    want_c = -(A @ x).sum() / c ** 2
    jg = lldiff.jit_grad(_weighted)
    vg = lldiff.value_and_grad(_weighted, argnums=2)
    g = lldiff.grad(_weighted)
    before = sys.getrefcount(x), sys.getrefcount(A)
    seen = []
    for _ in range(3):  # the first call is the checked path, then the entry point
        y, (gx, gc, gA) = jg(x, c, A)
        assert y == pytest.approx((A @ x).sum() / c, rel=1e-14)
        np.testing.assert_allclose(gx, want_x, rtol=1e-14)
        np.testing.assert_allclose(gA, want_A, rtol=1e-14)
        assert gc == pytest.approx(want_c, rel=1e-14)
        assert gA.shape == A.shape and gA.flags.c_contiguous and gA.flags.writeable
        y2, gA2 = vg(x, c, A)
        assert y2 == y
        np.testing.assert_array_equal(gA2, gA)
        np.testing.assert_array_equal(g(x, c, A), gx)
        seen += [gx, gA, gA2]
        gx[:] = 99.0  # owned by the caller: the next call starts from zeros again
    assert len({id(a) for a in seen}) == len(seen)
    assert (sys.getrefcount(x), sys.getrefcount(A)) == before


def test_gradient_entry_points_hand_other_dtypes_and_layouts_to_the_checked_path():
    """One native entry serves a transformation's calls of the same Python types; arrays it
    refuses (another dtype or layout, unaligned) take the checked path with its results or
    its clear error."""
    vg = lldiff.value_and_grad(poorman_norm)
    g = lldiff.grad(poorman_norm)
    x = np.linspace(-1.0, 2.0, 9)
    for arr in (x, x.astype(np.float32), x[::2], x, x.astype(np.float32)):
        y, gx = vg(arr)
        ref = arr.astype(np.float64)
        rtol = 1e-6 if arr.dtype == np.float32 else 1e-14
        assert y == pytest.approx(np.linalg.norm(ref), rel=rtol)
        assert gx.dtype == arr.dtype and gx.shape == arr.shape
        np.testing.assert_allclose(gx, ref / np.linalg.norm(ref), rtol=rtol)
        np.testing.assert_array_equal(g(arr), gx)
    raw = np.zeros(9 * 8 + 1, dtype=np.uint8)[1:].view(np.float64)  # misaligned
    raw[:] = x
    for fn in (vg, g):
        with pytest.raises(ValueError, match="aligned"):
            fn(raw)


def _scaled_sine(a, x):
    return a * math.sin(x)


def test_a_gradient_calls_its_native_entry_and_hands_it_other_calls():
    """After its first call, value_and_grad of one argument is its native entry point (a
    builtin as the function's __call__, as lldiff.jit functions) and grad calls it with no
    type lookup; calls it refuses -- other argument types, keywords, a wrong count -- take
    the entry of their own types or the checked path, with its results or its errors."""
    vg = lldiff.value_and_grad(_scaled_sine, argnums=1)
    g = lldiff.grad(_scaled_sine, argnums=1)
    assert vg(2.0, 0.5) == (2.0 * math.sin(0.5), 2.0 * math.cos(0.5))
    assert type(type(vg).__call__).__name__ == "builtin_function_or_method"
    for _ in range(2):  # the second time, the int call has its own entry
        for dx in (g, lambda *a, **k: vg(*a, **k)[1]):
            assert dx(2.0, 0.5) == 2.0 * math.cos(0.5)
            assert dx(3, 0.5) == 3 * math.cos(0.5)
            assert dx(2.0, x=0.25) == 2.0 * math.cos(0.25)
            with pytest.raises(TypeError, match="argument"):
                dx(2.0)
            with pytest.raises(TypeError, match="argument 'x'"):
                dx(2.0, "0.5")
    arrays = lldiff.value_and_grad(poorman_norm)
    x = np.linspace(-1.0, 2.0, 9)
    arrays(x)
    assert type(type(arrays).__call__).__name__ == "builtin_function_or_method"
    y, gx = arrays(x)
    np.testing.assert_allclose(gx, x / np.linalg.norm(x), rtol=1e-14)


def _sum_over(x, d):
    s = 0.0
    for i in range(len(x)):
        s += x[i] * x[i]
    return s / d


def test_an_error_after_the_gradient_arrays_are_made_releases_them():
    import tracemalloc
    x = np.ones(1 << 20)  # 8 MiB: a leaked gradient array would show
    jg, g = lldiff.jit_grad(_sum_over), lldiff.grad(_sum_over)
    assert jg(x, 2.0)[0] == pytest.approx(x.size / 2.0)
    assert g(x, 2.0)[0] == pytest.approx(1.0)
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        for _ in range(10):
            for fn in (jg, g):
                with pytest.raises(ZeroDivisionError):
                    fn(x, 0.0)
        grown = tracemalloc.get_traced_memory()[0] - start
    finally:
        tracemalloc.stop()
    assert grown < x.nbytes
