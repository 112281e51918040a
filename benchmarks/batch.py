#!/usr/bin/env python
"""Batch evaluation benchmark: lldiff.vectorize against numba loops, from ONE run.

10^6 points z = 10 (i + 1/2) / 10^6, v = 2, ns per point (min / median of interleaved
repeats), on one thread and on all threads:
  J_2(z)          lldiff.vectorize(besselj)             vs numba loop over besselj
  d/dz J_2(z)     lldiff.vectorize(lldiff.grad(besselj)) vs numba loop over the hand rule
                  1/2 (J_1 - J_3) (issue 6's goal: within 1.1x of it)
Every result is checked against the scalar calls (bit for bit) and scipy.special.jvp.

Usage
  python benchmarks/batch.py            # full run (~30 s)
  python benchmarks/batch.py --quick    # smoke run
"""

import argparse
import os
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)

from forward import _interleaved  # noqa: E402
from primal import _cpu_model, _loadavg, _numba_register_factorial, besselj  # noqa: E402


def main(argv=None):
    import numba
    import numpy as np
    from scipy.special import jv, jvp

    import lldiff
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    n = 10 ** 5 if args.quick else 10 ** 6
    repeats = 3 if args.quick else 11
    cores = os.cpu_count() or 1
    print(f"machine: {_cpu_model()}, {cores} CPUs, load {_loadavg()}; lldiff "
          f"{lldiff.__version__}, numba {numba.__version__}")
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

    @numba.njit(parallel=True)
    def nb_rule_par(v, z, out):
        for i in numba.prange(len(z)):
            out[i] = 0.5 * (nb_j(v - 1, z[i]) - nb_j(v + 1, z[i]))

    f = lldiff.jit(besselj)
    val1 = lldiff.vectorize(f, threads=1)
    valn = lldiff.vectorize(f, threads=cores)
    grad1 = lldiff.vectorize(lldiff.grad(f, argnums=1), threads=1)
    gradn = lldiff.vectorize(lldiff.grad(f, argnums=1), threads=cores)
    out = np.empty(n)
    y, g = valn(2, z), gradn(2, z)
    nb_values(2, z, out), nb_rule(2, z, out), nb_rule_par(2, z, out)
    exact = all(y[i] == f(2, float(z[i])) for i in range(0, n, 997)) and all(
        g[i] == lldiff.grad(f, argnums=1)(2, float(z[i])) for i in range(0, n, 997))
    print(f"checks: equal to scalar calls {exact}; max |J - scipy| "
          f"{np.abs(y - jv(2, z)).max():.1e}, max |dJ/dz - scipy| "
          f"{np.abs(g - jvp(2, z, 1)).max():.1e}")
    variants = {
        "J_2  lldiff.vectorize, 1 thread": lambda: val1(2, z, out=out),
        "J_2  numba loop, 1 thread": lambda: nb_values(2, z, out),
        f"J_2  lldiff.vectorize, {cores} threads": lambda: valn(2, z, out=out),
        "dJ/dz lldiff.vectorize(grad), 1 thread": lambda: grad1(2, z, out=(out, out)),
        "dJ/dz numba hand rule, 1 thread": lambda: nb_rule(2, z, out),
        f"dJ/dz lldiff.vectorize(grad), {cores} thr": lambda: gradn(2, z, out=(out, out)),
        "dJ/dz numba hand rule, prange": lambda: nb_rule_par(2, z, out),
    }
    times = _interleaved(variants, repeats)
    print(f"\n{n} points, ns/point (min / median of {repeats})")
    for k, ts in times.items():
        print(f"   {k:42s} {min(ts) / n * 1e9:8.1f} {statistics.median(ts) / n * 1e9:8.1f}")
    r1 = min(times["dJ/dz lldiff.vectorize(grad), 1 thread"]) / \
        min(times["dJ/dz numba hand rule, 1 thread"])
    rn = min(times[f"dJ/dz lldiff.vectorize(grad), {cores} thr"]) / \
        min(times["dJ/dz numba hand rule, prange"])
    print(f"   batched gradient / numba hand rule: {r1:.2f} (1 thread), {rn:.2f} "
          f"({cores} threads)   goal <= 1.1 " + ("[ok]" if max(r1, rn) <= 1.1 else "[MISS]"))


if __name__ == "__main__":
    main()
