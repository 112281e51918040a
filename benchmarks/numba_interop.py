#!/usr/bin/env python
"""Calling lldiff from @numba.njit loops (lldiff/numba_ext.py) against numba-native code,
from ONE run.

ns per loop iteration (min / median of interleaved repeats), a loop `s += f(x[i], ...)` over
10^6 points:
  mul1     x * y + 1 (the call overhead shows; ../shared/notes/infra.md measured 0.88 ns
           through a linked intrinsic vs 0.85 numba-native vs ~6.5 via a function pointer)
           lldiff.jit(mul1) in the njit loop  vs  numba inlining its own mul1
  bessel   dJ_2/dz: lldiff.grad(besselj, 1) in the njit loop  vs  numba running the
           hand-written rule 1/2 (J_1 - J_3) (issue 6's limit)  vs  numba's primal J_2
Results are checked: the njit loops against the Python calls, and the gradient against
scipy.special.jvp.

Usage
  python benchmarks/numba_interop.py           # ~20 s
  python benchmarks/numba_interop.py --quick
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


def mul1(x, y):
    return x * y + 1.0


def main(argv=None):
    import numba
    import numpy as np
    from scipy.special import jvp

    import lldiff
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    n = 10 ** 5 if args.quick else 10 ** 6
    repeats = 5 if args.quick else 15
    print(f"machine: {_cpu_model()}, {os.cpu_count()} CPUs, load {_loadavg()}; lldiff "
          f"{lldiff.__version__}, numba {numba.__version__}")
    _numba_register_factorial()
    ld_mul1 = lldiff.jit(mul1)
    ld_grad = lldiff.grad(besselj, 1)
    nb_mul1 = numba.njit(mul1)
    nb_j = numba.njit(besselj)

    @numba.njit
    def loop_ld_mul1(xs, y):
        s = 0.0
        for x in xs:
            s += ld_mul1(x, y)
        return s

    @numba.njit
    def loop_nb_mul1(xs, y):
        s = 0.0
        for x in xs:
            s += nb_mul1(x, y)
        return s

    @numba.njit
    def loop_ld_grad(v, zs, out):
        for i in range(zs.size):
            out[i] = ld_grad(v, zs[i])

    @numba.njit
    def loop_nb_rule(v, zs, out):
        for i in range(zs.size):
            out[i] = 0.5 * (nb_j(v - 1, zs[i]) - nb_j(v + 1, zs[i]))

    @numba.njit
    def loop_nb_primal(v, zs, out):
        for i in range(zs.size):
            out[i] = nb_j(v, zs[i])

    xs = np.random.default_rng(0).random(n)
    zs = 10.0 * (np.arange(n) + 0.5) / n
    out, ref = np.empty(n), np.empty(n)
    a, b = loop_ld_mul1(xs, 2.0), loop_nb_mul1(xs, 2.0)
    loop_ld_grad(2, zs, out)
    loop_nb_rule(2, zs, ref)
    loop_nb_primal(2, zs, ref)
    same = all(out[i] == ld_grad(2, float(zs[i])) for i in range(0, n, 997))
    print(f"checks: mul1 sums {a:.15g} vs {b:.15g}; njit gradient equals the Python calls "
          f"{same}; max |dJ/dz - scipy| {np.abs(out - jvp(2, zs)).max():.1e}")
    variants = {
        "mul1   lldiff.jit in njit loop": lambda: loop_ld_mul1(xs, 2.0),
        "mul1   numba-native": lambda: loop_nb_mul1(xs, 2.0),
        "dJ/dz  lldiff.grad in njit loop": lambda: loop_ld_grad(2, zs, out),
        "dJ/dz  numba hand rule": lambda: loop_nb_rule(2, zs, ref),
        "J_2    numba primal": lambda: loop_nb_primal(2, zs, ref),
    }
    times = _interleaved(variants, repeats)
    print(f"\n{n} iterations, ns/iteration (min / median of {repeats})")
    for k, ts in times.items():
        print(f"   {k:34s} {min(ts) / n * 1e9:8.2f} {statistics.median(ts) / n * 1e9:8.2f}")
    r = min(times["mul1   lldiff.jit in njit loop"]) / min(times["mul1   numba-native"])
    g = min(times["dJ/dz  lldiff.grad in njit loop"]) / min(times["dJ/dz  numba hand rule"])
    print(f"   mul1 lldiff / numba-native: {r:.2f}; gradient lldiff / hand rule: {g:.2f}")


if __name__ == "__main__":
    main()
