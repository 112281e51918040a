"""Reverse mode: the dot-product test against forward mode.

For every corpus function, on every input where plain Python returns finite values: <J v, w> computed by forward mode must
equal <v, J^T w> computed by reverse mode (relative 1e-12), for random v and w. Forward mode is
itself checked against 50-digit finite differences (test_jvp_corpus.py).
"""

import math
import os
import random
import sys
import types

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import corpus  # noqa: E402

FUNCS = {name: obj for name, obj in vars(corpus).items()
         if isinstance(obj, types.FunctionType) and obj.__module__ == corpus.__name__}

STATS = {"functions": 0, "points": 0}

# Points where the series itself loses most of its digits: J0(20) sums terms up to ~1e7 to
# get 0.17, so forward and reverse sums (different orders) agree only to ~1e-9 relative.
CANCELLATION = {("besselj", (0, 20.0)): 1e-7}


@pytest.fixture(scope="module")
def jitted():
    import lldiff
    ns = dict(vars(corpus))
    for name, fn in FUNCS.items():
        ns[name] = lldiff.jit(types.FunctionType(fn.__code__, ns, fn.__name__))
    return ns


def _as_list(v):
    return list(v) if isinstance(v, tuple) else [v]


@pytest.mark.parametrize("case", [pytest.param(c, id=c.fn.__name__) for c in corpus.CASES
                                  if any(isinstance(a, float) for i in c.inputs for a in i)])
def test_reverse_equals_transposed_forward(case, jitted):
    import lldiff
    d = jitted[case.fn.__name__]
    rng = random.Random(case.fn.__name__)
    checked = 0
    for args in case.inputs:
        try:
            with np.errstate(all="ignore"):
                py = case.fn(*args)
        except Exception:  # noqa: BLE001 - only inputs on which Python returns are used
            continue
        if not all(isinstance(e, (int, float)) and math.isfinite(e) for e in _as_list(py)):
            continue
        tys = tuple(d._arg_type(f"a{i}", a) for i, a in enumerate(args))
        mask = tuple(t.is_float for t in tys)
        if not any(mask):
            continue
        spec = d._derived(tys, "vjp", mask)
        rtypes = d._ir(tys).func.result_types
        v = [rng.uniform(-1, 1) if m else None for m in mask]
        w = [rng.uniform(-1, 1) for t in rtypes if t.is_float]
        if not w:
            continue
        _, dy = lldiff.jvp(d, args, v)
        dys = [t for t in _as_list(dy) if t is not None]
        out = _as_list(spec.entry(*args, *w))
        xbar = out[len(rtypes):]
        lhs = sum(a * b for a, b in zip(w, dys))
        rhs = sum(a * b for a, b in zip([x for x in v if x is not None], xbar))
        scale = sum(abs(a * b) for a, b in zip(w, dys)) + \
            sum(abs(a * b) for a, b in zip([x for x in v if x is not None], xbar))
        if not (math.isfinite(lhs) and math.isfinite(rhs)):
            continue
        # absolute floor: derivatives that are rounding noise (a converged iteration's
        # dependence on its start) or sums with cancellation (the Bessel series at z = 10)
        floor = 1e-13 * math.hypot(*[x for x in v if x is not None]) * math.hypot(*w)
        rtol = CANCELLATION.get((case.fn.__name__, args), 1e-12)
        assert abs(lhs - rhs) <= rtol * scale + floor, (args, v, w, dys, xbar)
        checked += 1
    STATS["functions"] += 1
    STATS["points"] += checked


def test_reverse_mode_covered_a_good_part_of_the_corpus():
    if STATS["functions"] == 0:
        pytest.skip("the dot-product test did not run in this session")
    assert STATS["functions"] >= 40, STATS
