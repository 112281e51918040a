"""Checkpointing (passes/checkpoint.py): `grad(f, checkpoints=c)`.

Oracles: plain reverse mode (the same gradient, bit for bit: checkpointing only changes when
iterations run, not their arithmetic), scipy.special.jvp and closed forms for the values, a
brute-force dynamic program for revolve's optimal recomputation count, and the runtime's own
counters for tape memory and recomputed iterations.
"""

import functools
import math
import os
import sys
import types

import numpy as np
import pytest

import lldiff
from lldiff.passes.checkpoint import revolve_steps
from lldiff.runtime import counters

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import corpus  # noqa: E402


@lldiff.jit
def chain(x0, theta, h, K):
    x = x0
    for k in range(K):
        x = x + h * math.sin(x) * theta
    return x


@lldiff.jit
def chain_dyn(x0, theta, h, T):
    x = x0
    t = 0.0
    while t < T:
        x = x + h * math.sin(x) * theta
        t += h
    return x


besselj = lldiff.jit(corpus.besselj)  # the seed's series: a while loop


def _run(g, *args):
    """(gradient, counters of that call)."""
    counters(reset=True)
    out = g(*args)
    return out, counters(reset=True)


# --- revolve's count ------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _fewest(n, c):
    """Brute force: the fewest plain iterations that reverse n iterations with c snapshots
    (the state at the start in one of them): split at m, reverse m..n-1 with one snapshot
    fewer, then 0..m-1 again with all of them."""
    if n <= 1:
        return 0
    if c == 1:
        return n * (n - 1) // 2
    return min(m + _fewest(n - m, c - 1) + _fewest(m, c) for m in range(1, n))


def test_revolve_formula_equals_the_brute_force_optimum():
    for c in range(1, 6):
        for n in range(0, 80):
            assert revolve_steps(n, c) == _fewest(n, c), (n, c)


@pytest.mark.parametrize("c", [1, 2, 3, 5])
def test_recomputations_of_a_for_loop_are_revolves_optimum(c):
    # the first forward sweep runs n iterations (revolve: n - 1 and one recorded), so the
    # reverse sweep recomputes p(n, c) - (n - 1)
    plain = lldiff.grad(chain, (0, 1))
    g = lldiff.grad(chain, (0, 1), checkpoints=c)
    for n in list(range(0, 30)) + [97, 300]:
        got, cnt = _run(g, 1.0, 0.5, 1e-2, n)
        assert got == plain(1.0, 0.5, 1e-2, n)
        assert cnt["recomputed_steps"] == revolve_steps(n, c) - max(n - 1, 0), (n, c)


@pytest.mark.parametrize("c", [1, 4])
def test_recomputations_of_a_while_loop_are_revolves_from_the_start(c):
    plain = lldiff.grad(chain_dyn, (0, 1))
    g = lldiff.grad(chain_dyn, (0, 1), checkpoints=c)
    for n in [0, 1, 2, 3, 10, 64]:
        T = (n - 0.5) * 0.25 if n else 0.0  # n iterations of t += 0.25 (exact in binary)
        got, cnt = _run(g, 1.0, 0.5, 0.25, T)
        assert got == plain(1.0, 0.5, 0.25, T)
        assert cnt["recomputed_steps"] == revolve_steps(n, c), (n, c)


# --- the chain recurrence of the issue: K = 10^6, c = 20 ------------------------------------

def test_chain_of_a_million_steps_with_20_snapshots():
    K, c = 10 ** 6, 20
    args = (1.0, 0.5, 1e-4, K)
    plain, pc = _run(lldiff.grad(chain, (0, 1)), *args)
    got, cc = _run(lldiff.grad(chain, (0, 1), checkpoints=c), *args)
    assert got == plain  # bit for bit
    # plain reverse mode tapes x every iteration: 8 bytes each, on the heap
    assert pc["tape_peak"] == 8 * K
    # revolve's bound: c snapshots of the state (x: 8 bytes) plus the iteration number and
    # the previous snapshot's (16 bytes); the one-iteration tape of a turn stays in the
    # frame's inline buffer
    assert cc["tape_peak"] == c * (8 + 16)
    assert cc["tape_bytes"] == 0 and pc["tape_bytes"] == 0  # all freed
    assert cc["recomputed_steps"] == revolve_steps(K, c) - (K - 1)


def test_chain_gradient_matches_the_hand_written_adjoint():
    K = 2000
    x0, th, h = 1.0, 0.5, 1e-3
    xs = [x0]
    for _ in range(K):
        xs.append(xs[-1] + h * math.sin(xs[-1]) * th)
    xb, thb = 1.0, 0.0
    for k in range(K - 1, -1, -1):
        thb += xb * h * math.sin(xs[k])
        xb *= 1.0 + h * math.cos(xs[k]) * th
    g = lldiff.grad(chain, (0, 1), checkpoints=3)(x0, th, h, K)
    assert g == pytest.approx((xb, thb), rel=1e-12)


# --- other loops ----------------------------------------------------------------------------

@pytest.mark.parametrize("z", [0.3, 2.5, 7.0, 15.0])
def test_bessel_series_derivative_with_checkpoints(z):
    from scipy import special
    g = lldiff.grad(besselj, argnums=1, checkpoints=2)
    assert g(2, z) == lldiff.grad(besselj, argnums=1)(2, z)
    assert g(2, z) == pytest.approx(special.jvp(2, z), rel=1e-9, abs=1e-13)


@lldiff.jit
def branchy(x, a, n):
    s = 0.0
    for i in range(1, n, 2):  # a step of 2, not starting at 0
        if x > 0.5:
            x = x * a - 0.1 * math.cos(x)
        else:
            x = x + a * x * x
        s += x * i
    return s + x


@lldiff.jit
def nested(x, a, n):
    for i in range(n):
        y = 0.0
        j = 0
        while j < i % 4 + 1:  # an inner loop whose trip count the outer iteration picks
            y += math.sin(x * j + a)
            j += 1
        x = 0.5 * x + 0.1 * y
    return x


@lldiff.jit
def early_exit(x, a):
    k = 0
    while True:
        x = x - 0.1 * (x * x - a)
        k += 1
        if abs(x * x - a) < 1e-12 or k > 500:
            break
    return x


@lldiff.jit
def two_loops(x, w, n):
    for i in range(n):
        x = math.tanh(w * x + 0.1)
    y = x
    m = 0
    while y < 10.0 and m < 40:
        y = y * 1.3 + w
        m += 1
    return x * y


@lldiff.jit
def reads_array(x, c, n):
    for i in range(n):
        x = x + c[i % c.shape[0]] * math.sin(x)
    return x


@lldiff.jit
def writes_array(x, buf, n):
    for i in range(n):
        buf[i % 3] = x
        x = x * 0.9 + buf[(i + 1) % 3] * 0.05
    return x


@pytest.mark.parametrize("f,args,nums", [
    (branchy, (0.4, 1.01, 41), (0, 1)),
    (nested, (0.7, 0.3, 23), (0, 1)),
    (early_exit, (3.0, 2.0), (0, 1)),
    (two_loops, (0.2, 0.8, 30), (0, 1)),
    (reads_array, (0.3, np.array([0.1, -0.2, 0.3]), 50), (0, 1)),
], ids=lambda v: getattr(v, "__name__", None) or "")
@pytest.mark.parametrize("c", [1, 2, 7])
def test_checkpointed_gradient_equals_plain_reverse_mode(f, args, nums, c):
    plain = lldiff.grad(f, nums)(*args)
    got, cnt = _run(lldiff.grad(f, nums, checkpoints=c), *args)
    for a, b in zip(got, plain):
        np.testing.assert_array_equal(a, b)
    assert cnt["snapshots"] > 0  # the loop was checkpointed


def test_a_loop_that_writes_memory_keeps_its_tape():
    buf = np.zeros(3)
    plain = lldiff.grad(writes_array)(0.5, buf.copy(), 20)
    got, cnt = _run(lldiff.grad(writes_array, checkpoints=2), 0.5, buf.copy(), 20)
    assert got == plain
    assert cnt["snapshots"] == 0


def test_value_and_grad_with_checkpoints():
    v, g = lldiff.value_and_grad(chain, (0, 1), checkpoints=4)(1.0, 0.5, 1e-2, 500)
    assert v == chain(1.0, 0.5, 1e-2, 500)
    assert g == lldiff.grad(chain, (0, 1))(1.0, 0.5, 1e-2, 500)


def test_snapshot_memory_of_a_larger_state():
    @lldiff.jit
    def six(a, n):
        x1 = x2 = x3 = x4 = x5 = x6 = a
        for i in range(n):
            x1, x2, x3, x4, x5, x6 = x2, x3, x4, x5, x6, math.sin(x1) * 0.5 + x6 * 0.5
        return x1 + x2 + x3 + x4 + x5 + x6
    got, cnt = _run(lldiff.grad(six, checkpoints=5), 0.7, 300)
    assert got == lldiff.grad(six)(0.7, 300)
    assert cnt["tape_peak"] == 5 * (6 * 8 + 16)


@pytest.mark.parametrize("bad,exc", [(0, ValueError), (-3, ValueError), (2.0, TypeError),
                                     (True, TypeError), ("20", TypeError)])
def test_bad_checkpoints_argument(bad, exc):
    with pytest.raises(exc, match="checkpoints"):
        lldiff.grad(chain, checkpoints=bad)


# --- the corpus -----------------------------------------------------------------------------

FUNCS = {name: obj for name, obj in vars(corpus).items()
         if isinstance(obj, types.FunctionType) and obj.__module__ == corpus.__name__}
COVERED = {"functions": 0}


@pytest.fixture(scope="module")
def jitted():
    ns = dict(vars(corpus))
    for name, fn in FUNCS.items():
        ns[name] = lldiff.jit(types.FunctionType(fn.__code__, ns, fn.__name__))
    return ns


def _same(a, b):
    a = a if isinstance(a, tuple) else (a,)
    b = b if isinstance(b, tuple) else (b,)
    return len(a) == len(b) and all(x == y or x != x and y != y for x, y in zip(a, b))


@pytest.mark.parametrize("case", [pytest.param(c, id=c.fn.__name__) for c in corpus.CASES
                                  if any(isinstance(a, float) for i in c.inputs for a in i)])
def test_corpus_checkpointed_vjp_equals_plain_vjp(case, jitted):
    d = jitted[case.fn.__name__]
    hit = False
    for args in case.inputs:
        tys = tuple(d._arg_type(f"a{i}", a) for i, a in enumerate(args))
        mask = tuple(t.is_float for t in tys)
        if not any(mask):
            continue
        plain = d._derived(tys, "vjp", mask)
        w = [0.3 + i for i, t in enumerate(d._ir(tys).func.result_types) if t.is_float]
        for c in (1, 3):
            ck = d._derived(tys, "vjp", mask, checkpoints=c)
            hit |= any("ad.count" in text for text in ck.before_tape)
            outs = []
            for spec in (plain, ck):
                try:
                    with np.errstate(all="ignore"):
                        outs.append(spec.entry(*args, *w))
                except Exception as e:  # noqa: BLE001 - the same error from both
                    outs.append(type(e))
            if isinstance(outs[0], type) or isinstance(outs[1], type):
                assert outs[0] is outs[1], (args, c, outs)
            else:
                assert _same(*outs), (args, c, outs)
    COVERED["functions"] += hit


def test_corpus_had_loops_to_checkpoint():
    if not COVERED["functions"]:
        pytest.skip("the corpus test did not run in this session")
    assert COVERED["functions"] >= 12, COVERED


@pytest.mark.parametrize("transform", [
    lambda g: lldiff.vectorize(g), lambda g: lldiff.grad(g), lambda g: lldiff.jacfwd(g),
    lambda g: lldiff.jvp(g, (1.0, 0.5, 1e-2, 10), (1.0, None, None, None))])
def test_transforming_a_checkpointed_gradient_is_refused_clearly(transform):
    g = lldiff.grad(chain, checkpoints=3)
    with pytest.raises(NotImplementedError, match="checkpoints"):
        transform(g)


def test_runtime_and_codegen_agree_on_the_counter_layout():
    # runtime/__init__.py repeats codegen's slot list so that it needs nothing of the compiler
    from lldiff import runtime
    from lldiff.codegen.llvm import COUNTER_SLOTS, COUNTERS
    assert runtime._COUNTER_SLOTS == COUNTER_SLOTS
    assert COUNTERS in runtime.PROCESS_SYMBOLS
    assert set(counters()) == set(COUNTER_SLOTS)
