#!/usr/bin/env python
"""SIMD lanes benchmark: lldiff.vectorize in SPMD form against numba's hand-written rules,
from ONE run, per point on one thread (and on all threads).

Workloads
  Bessel   10^6 points z = 10 (i + 1/2) / 10^6, v = 2 (a number: uniform in the lanes).
           value J_2(z), forward d/dz (lldiff.jacfwd) and reverse d/dz (lldiff.grad),
           against numba loops over J_2 and over the hand rule J' = (J_1 - J_3) / 2.
           Goals (issue 10): reverse <= 0.4x and forward <= 0.2x of the hand rule.
  chain    x_{k+1} = x_k + h sin(x_k) theta, K = 1000 steps, over a batch of 2 * 10^4
           parameters (x0, theta): reverse d/d(x0, theta) (lldiff.grad) against numba
           running a hand-written reverse sweep over a tape (chain_hand), forward (jacfwd,
           two tangents) against a hand-written tangent sweep (chain_tangent).
Every lldiff row is checked against the scalar loop (simd=False: equal bit for bit), and
the Bessel results against scipy.special.jv / jvp, the chain against chain_hand.

Usage
  python benchmarks/spmd.py            # full run (~1 min)
  python benchmarks/spmd.py --quick    # smoke run
"""

import argparse
import math
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)

from forward import _interleaved, _table  # noqa: E402
from peers import chain_hand  # noqa: E402
from primal import _cpu_model, _loadavg, _numba_register_factorial, besselj  # noqa: E402
from reverse import chain  # noqa: E402

GOALS = {"reverse": 0.4, "forward": 0.2}


def chain_tangent(x0, theta, h, steps):
    """chain() and its derivatives w.r.t. (x0, theta) by a hand-written tangent sweep."""
    x, dx0, dth = x0, 1.0, 0.0
    for _ in range(steps):
        s, c = math.sin(x), math.cos(x)
        dx0 = dx0 + h * c * dx0 * theta
        dth = dth + h * (c * dth * theta + s)
        x = x + h * s * theta
    return x, (dx0, dth)


def _same(a, b):
    import numpy as np
    a = a if isinstance(a, tuple) else (a,)
    b = b if isinstance(b, tuple) else (b,)
    return all(np.array_equal(np.asarray(x).view(np.int64), np.asarray(y).view(np.int64))
               for x, y in zip(a, b))


def main(argv=None):
    import numba
    import numpy as np
    from scipy.special import jv, jvp

    import lldiff
    from lldiff.runtime import get_engine
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    n = 10 ** 5 if args.quick else 10 ** 6
    m, steps = (2000, 1000) if args.quick else (20000, 1000)
    repeats = 3 if args.quick else 9
    cores = os.cpu_count() or 1
    lanes = get_engine().simd_lanes()
    print(f"machine: {_cpu_model()}, {cores} CPUs ({get_engine().cpu}), load {_loadavg()}; "
          f"lldiff {lldiff.__version__}, numba {numba.__version__}; SIMD lanes: {lanes} x f64")

    # --- Bessel -------------------------------------------------------------------------
    z = 10.0 * (np.arange(n) + 0.5) / n
    _numba_register_factorial()
    nb_j = numba.njit(besselj)

    @numba.njit
    def nb_values(v, z, out):
        for i in range(len(z)):
            out[i] = nb_j(v, z[i])

    @numba.njit
    def nb_rule(v, z, out):
        for i in range(len(z)):
            out[i] = 0.5 * (nb_j(v - 1, z[i]) - nb_j(v + 1, z[i]))

    f = lldiff.jit(besselj)
    maps = {}
    for key, make in (("value", lambda: f), ("forward", lambda: lldiff.jacfwd(f, argnums=1)),
                      ("reverse", lambda: lldiff.grad(f, argnums=1))):
        for simd in (True, False):
            maps[key, simd, 1] = lldiff.vectorize(make(), threads=1, simd=simd)
        maps[key, True, cores] = lldiff.vectorize(make(), threads=cores)
    out = np.empty(n)
    nb_values(2, z, out), nb_rule(2, z, out)
    got = {k: v(2, z) for k, v in maps.items()}
    exact = all(_same(got[k, True, 1], got[k, False, 1]) and _same(got[k, True, cores],
                got[k, False, 1]) for k in ("value", "forward", "reverse"))
    err = max(np.abs(got["value", True, 1] - jv(2, z)).max(),
              np.abs(got["forward", True, 1] - jvp(2, z, 1)).max(),
              np.abs(got["reverse", True, 1] - jvp(2, z, 1)).max())
    print(f"checks: SIMD lanes equal the scalar loop bit for bit: {exact}; max |error| vs "
          f"scipy {err:.1e}")
    variants = {
        "numba loop, J_2": lambda: nb_values(2, z, out),
        "numba loop, hand rule J'": lambda: nb_rule(2, z, out),
    }
    for key in ("value", "forward", "reverse"):
        variants[f"lldiff {key}, SIMD"] = lambda k=key: maps[k, True, 1](2, z, out=_outs(k, n))
        variants[f"lldiff {key}, scalar loop"] = lambda k=key: maps[k, False, 1](
            2, z, out=_outs(k, n))
    for key in ("value", "forward", "reverse"):
        variants[f"lldiff {key}, SIMD, {cores} thr"] = lambda k=key: maps[k, True, cores](
            2, z, out=_outs(k, n))
    times = _interleaved(variants, repeats)
    print(f"\nBessel, {n:.0e} points, ns/point (min, median), / numba hand rule (1 thread):")
    _table(times, n, "numba loop, hand rule J'", width=30)
    ratios = {}
    rule = min(times["numba loop, hand rule J'"])
    for key in ("forward", "reverse"):
        ratios[key] = min(times[f"lldiff {key}, SIMD"]) / rule
    print("goals (1 thread): " + ", ".join(
        f"{k} {r:.2f}x <= {GOALS[k]} [{'ok' if r <= GOALS[k] else 'MISS'}]"
        for k, r in ratios.items()))

    # --- chain over a batch of parameters -----------------------------------------------
    rng = np.random.default_rng(0)
    x0 = rng.uniform(-2, 2, m)
    theta = rng.uniform(0.2, 1.5, m)
    h = 1e-2
    nb_hand = numba.njit(chain_hand)
    nb_tan = numba.njit(chain_tangent)

    @numba.njit
    def nb_rev(x0, theta, h, steps, y, g0, g1):
        for i in range(len(x0)):
            y[i], (g0[i], g1[i]) = nb_hand(x0[i], theta[i], h, steps)

    @numba.njit
    def nb_fwd(x0, theta, h, steps, y, g0, g1):
        for i in range(len(x0)):
            y[i], (g0[i], g1[i]) = nb_tan(x0[i], theta[i], h, steps)

    c = lldiff.jit(chain)
    cfast = lldiff.jit(chain, fastmath=True)
    cmaps = {("reverse", "fast"): lldiff.vectorize(
        lldiff.value_and_grad(cfast, argnums=(0, 1)), threads=1),
        ("forward", "fast"): lldiff.vectorize(lldiff.jacfwd(cfast, argnums=(0, 1)), threads=1)}
    for simd in (True, False):
        cmaps["reverse", simd] = lldiff.vectorize(lldiff.value_and_grad(c, argnums=(0, 1)),
                                                  threads=1, simd=simd)
        cmaps["forward", simd] = lldiff.vectorize(lldiff.jacfwd(c, argnums=(0, 1)),
                                                  threads=1, simd=simd)
    y, g0, g1 = np.empty(m), np.empty(m), np.empty(m)
    nb_rev(x0, theta, h, steps, y, g0, g1)
    ref = (y.copy(), g0.copy(), g1.copy())
    nb_fwd(x0, theta, h, steps, y, g0, g1)
    rv = cmaps["reverse", True](x0, theta, h, steps)
    fw = cmaps["forward", True](x0, theta, h, steps)
    exact = _same(_flat(rv), _flat(cmaps["reverse", False](x0, theta, h, steps))) and \
        _same(_flat(fw), _flat(cmaps["forward", False](x0, theta, h, steps)))
    err = max(np.abs(a - b).max() / np.abs(b).max() for a, b in zip(_flat(rv), ref))
    err = max(err, max(np.abs(a - b).max() / np.abs(b).max()
                       for a, b in zip(fw, ref[1:])))
    fast = max(np.abs(a - b).max() / np.abs(b).max() for a, b in zip(
        _flat(cmaps["reverse", "fast"](x0, theta, h, steps)) +
        cmaps["forward", "fast"](x0, theta, h, steps), ref + ref[1:]))
    print(f"\nchecks: SIMD lanes equal the scalar loop bit for bit: {exact}; max relative "
          f"error vs chain_hand {err:.1e} (fastmath, libmvec: {fast:.1e})")
    cvariants = {
        "numba, hand reverse sweep": lambda: nb_rev(x0, theta, h, steps, y, g0, g1),
        "numba, hand tangent sweep": lambda: nb_fwd(x0, theta, h, steps, y, g0, g1),
        "lldiff reverse, SIMD": lambda: cmaps["reverse", True](x0, theta, h, steps),
        "lldiff reverse, scalar loop": lambda: cmaps["reverse", False](x0, theta, h, steps),
        "lldiff forward, SIMD": lambda: cmaps["forward", True](x0, theta, h, steps),
        "lldiff forward, scalar loop": lambda: cmaps["forward", False](x0, theta, h, steps),
        "lldiff reverse, SIMD, libmvec": lambda: cmaps["reverse", "fast"](x0, theta, h, steps),
        "lldiff forward, SIMD, libmvec": lambda: cmaps["forward", "fast"](x0, theta, h, steps),
    }
    ctimes = _interleaved(cvariants, max(3, repeats // 2))
    print(f"\nchain, K = {steps} steps, {m} parameter pairs, ns/point (min, median), / numba "
          "hand reverse sweep (1 thread):")
    _table(ctimes, m, "numba, hand reverse sweep", width=30)
    def ratio(row, hand):
        return min(ctimes[row]) / min(ctimes[f"numba, hand {hand} sweep"])

    print(f"ratios to the matching hand-written sweep: reverse "
          f"{ratio('lldiff reverse, SIMD', 'reverse'):.2f}x, forward "
          f"{ratio('lldiff forward, SIMD', 'tangent'):.2f}x; with fastmath (libmvec): reverse "
          f"{ratio('lldiff reverse, SIMD, libmvec', 'reverse'):.2f}x, forward "
          f"{ratio('lldiff forward, SIMD, libmvec', 'tangent'):.2f}x")
    return ratios


_OUTS = {}


def _outs(key, n):
    """Preallocated result arrays of a map (out=): value, or (value, derivative)."""
    import numpy as np
    got = _OUTS.get((key, n))
    if got is None:
        got = _OUTS[key, n] = np.empty(n) if key == "value" else (np.empty(n), np.empty(n))
    return got


def _flat(r):
    """(y, g0, g1) from value_and_grad's (y, (g0, g1)), or jacfwd's (g0, g1) as is."""
    if isinstance(r[1], tuple):
        return (r[0],) + tuple(r[1])
    return r


if __name__ == "__main__":
    main()
