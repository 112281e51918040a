#!/usr/bin/env python
"""Forward-mode benchmark: every ratio from ONE run, variants interleaved.

Sections
  1. Bessel d/dz over 10^6 points z = zmax (i + 1/2) / n, zmax = 10, v = 2 (the grid of
     ../shared/notes/enzyme: Enzyme forward 1.38x the primal, the hand rule 1.93x there).
     Each variant is a scalar driver loop compiled by lldiff that calls besselj per point:
       primal        sum_i J_v(z_i)
       lldiff jvp    jvp of the primal driver w.r.t. zmax: each point's forward derivative
       hand rule     sum_i 1/2 (J_{v-1}(z_i) - J_{v+1}(z_i)), compiled by lldiff
       central FD    sum_i (J_v(z_i + h) - J_v(z_i - h)) / 2h, compiled by lldiff
     ns per point, min and median of interleaved repeats; ratio to the primal.  goal <= 1.3
  2. Vector mode: the Jacobian of a small R^4 -> R^4 map summed over 10^5 points, by one
     4-direction sweep (lldiff.jacfwd) against 4 single-direction sweeps (lldiff.jvp).
  3. One call from Python: besselj(2, 0.5) against lldiff.jvp(besselj, ...) (API overhead).

Usage
  python benchmarks/forward.py            # full run (~1 min)
  python benchmarks/forward.py --quick    # smoke run
"""

import argparse
import math
import os
import statistics
import sys
import time
import timeit

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)

from primal import _cpu_model, _loadavg, besselj  # noqa: E402


def bessel_sum(v, n, zmax):
    acc = 0.0
    for i in range(n):
        acc += besselj(v, zmax * (i + 0.5) / n)
    return acc


def hand_rule_sum(v, n, zmax):
    acc = 0.0
    for i in range(n):
        z = zmax * (i + 0.5) / n
        acc += 0.5 * (besselj(v - 1, z) - besselj(v + 1, z))
    return acc


def fd_sum(v, n, zmax):
    h = 1e-6
    acc = 0.0
    for i in range(n):
        z = zmax * (i + 0.5) / n
        acc += (besselj(v, z + h) - besselj(v, z - h)) / (2 * h)
    return acc


def r4(a, b, c, d):
    return a * b, math.sin(c) + d * math.exp(-a), a * c * d, math.exp(b) - math.log(1 + a * a)


def r4_sum(a, b, c, d, n):
    s0 = s1 = s2 = s3 = 0.0
    for i in range(n):
        t = i * 1e-6
        y0, y1, y2, y3 = r4(a + t, b - t, c, d)
        s0 += y0
        s1 += y1
        s2 += y2
        s3 += y3
    return s0, s1, s2, s3


def _namespace():
    import lldiff
    g = {"__builtins__": __builtins__, "__name__": __name__, "math": math}
    import types
    for fn in (besselj, bessel_sum, hand_rule_sum, fd_sum, r4, r4_sum):
        g[fn.__name__] = lldiff.jit(types.FunctionType(fn.__code__, g, fn.__name__))
    return g


def _interleaved(variants, repeats):
    times = {k: [] for k in variants}
    for _ in range(repeats):
        for k, fn in variants.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return times


def _table(times, n, base_key, goal_key=None, goal=None, width=26, digits=1):
    """One line per variant: ns per unit (min and median), ratio to `base_key`, goal mark."""
    base = min(times[base_key])
    for k, ts in times.items():
        r = min(ts) / base
        mark = ""
        if k == goal_key:
            mark = f"   goal <= {goal} " + ("[ok]" if r <= goal else "[MISS]")
        print(f"   {k:{width}s} {min(ts) / n * 1e9:9.{digits}f} "
              f"{statistics.median(ts) / n * 1e9:9.{digits}f}   {r:5.2f}x{mark}")


def main(argv=None):
    import lldiff
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    n = 10 ** 5 if args.quick else 10 ** 6
    repeats = 3 if args.quick else 11
    g = _namespace()
    print(f"machine: {_cpu_model()}, load {_loadavg()}; lldiff {lldiff.__version__}")

    # 1. Bessel
    v, zmax = 2, 10.0
    bs, hs, fs = g["bessel_sum"], g["hand_rule_sum"], g["fd_sum"]
    ref_primal, ref_jvp = bs(v, n, zmax), lldiff.jvp(bs, (v, n, zmax), (None, None, 1.0))
    hs(v, n, zmax), fs(v, n, zmax)
    variants = {
        "primal": lambda: bs(v, n, zmax),
        "lldiff jvp": lambda: lldiff.jvp(bs, (v, n, zmax), (None, None, 1.0)),
        "hand rule": lambda: hs(v, n, zmax),
        "central FD": lambda: fs(v, n, zmax),
    }
    times = _interleaved(variants, repeats)
    base = min(times["primal"])
    print(f"\n1. Bessel J_2 and d/dz over {n} points in (0, {zmax:g}), ns/point "
          f"(min / median of {repeats}), ratio to the primal (min)")
    for k, ts in times.items():
        r = min(ts) / base
        goal = "   goal <= 1.3 " + ("[ok]" if r <= 1.3 else "[MISS]") if k == "lldiff jvp" else ""
        print(f"   {k:12s} {min(ts) / n * 1e9:7.1f} {statistics.median(ts) / n * 1e9:7.1f}"
              f"   {r:5.2f}x{goal}")
    # sanity: the jvp's d/dzmax is sum_i (i + 1/2)/n J'(z_i); the hand rule sums J'(z_i)
    print(f"   (values: primal {ref_primal:.6f}, jvp {ref_jvp[1]:.6f})")

    # 2. Vector mode
    m = n // 10
    rs = g["r4_sum"]
    p0 = (0.3, -0.2, 1.1, 0.7)
    jac = lldiff.jacfwd(rs, argnums=(0, 1, 2, 3))
    basis = [tuple(1.0 if i == k else 0.0 for i in range(4)) + (None,) for k in range(4)]
    J = jac(*p0, m)
    cols = [lldiff.jvp(rs, p0 + (m,), e)[1] for e in basis]
    agree = all(J[r][c] == cols[c][r] for r in range(4) for c in range(4))
    variants = {
        "primal": lambda: rs(*p0, m),
        "1 sweep, 4 dirs": lambda: jac(*p0, m),
        "4 sweeps, 1 dir": lambda: [lldiff.jvp(rs, p0 + (m,), e) for e in basis],
    }
    times = _interleaved(variants, repeats)
    base = min(times["primal"])
    print(f"\n2. Jacobian of an R^4 -> R^4 map, summed over {m} points: ns/point, ratio to the "
          f"primal (columns equal bit for bit: {agree})")
    for k, ts in times.items():
        print(f"   {k:16s} {min(ts) / m * 1e9:7.1f}   {min(ts) / base:5.2f}x")
    print(f"   vector mode / 4 sweeps: "
          f"{min(times['1 sweep, 4 dirs']) / min(times['4 sweeps, 1 dir']):.2f}")

    # 3. Calls from Python
    bj = g["besselj"]
    lldiff.jvp(bj, (2, 0.5), (None, 1.0))
    k = 20000
    t_primal = min(timeit.repeat(lambda: bj(2, 0.5), number=k, repeat=5)) / k
    t_jvp = min(timeit.repeat(lambda: lldiff.jvp(bj, (2, 0.5), (None, 1.0)), number=k,
                              repeat=5)) / k
    print(f"\n3. One call from Python: besselj(2, 0.5) {t_primal * 1e9:.0f} ns, "
          f"lldiff.jvp(besselj, (2, 0.5), (None, 1.0)) {t_jvp * 1e9:.0f} ns")


if __name__ == "__main__":
    main()
