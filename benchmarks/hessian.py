#!/usr/bin/env python
"""Second derivatives: forward over reverse (lldiff.hessian's default) against reverse over
forward, per call, from one run.

Both are one native call taking (arguments, one tangent) and returning the second
derivative along it: "hvp" is the jvp pass run on the gradient the vjp pass made (tape
included), "hvp-rof" the vjp pass run on the jvp. Each is timed through its builtin entry
point (the same call overhead for both, printed as the primal's) on
  bessel   the seed's series J_2(z), z = 3.7 (a while loop, ~15 iterations), d2/dz2
  chain    x <- x + h sin(x) theta, K = 1000 steps, d2/dtheta2
  poly     sum_k x^k / (k + 1), k < 200 (a for loop), d2/dx2
Min (median) ns per call over interleaved repeats, and the ratio to the primal's call.

Usage
  python benchmarks/hessian.py            # ~20 s
  python benchmarks/hessian.py --quick
"""

import argparse
import math
import os
import statistics
import sys
import timeit

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from primal import machine_info  # noqa: E402


def bessel(v, z):
    term = (z / 2.0) ** v / math.gamma(v + 1.0)
    s = term
    k = 0
    while abs(term) > 1e-16 * abs(s):
        k += 1
        term = -term * (z * z / 4.0) / (k * (k + v))
        s += term
    return s


def chain(x0, theta):
    x = x0
    for _ in range(1000):
        x = x + 0.001 * math.sin(x) * theta
    return x


def poly(x, n):
    s = 0.0
    p = 1.0
    for k in range(n):
        s += p / (k + 1)
        p *= x
    return s


CASES = [("bessel", bessel, (2.0, 3.7), 1), ("chain", chain, (0.3, 2.0), 1),
         ("poly", poly, (0.9, 200), 0)]


def main(argv=None):
    import lldiff
    from lldiff.ad import _dispatcher
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    number, repeats = (2000, 3) if args.quick else (20000, 9)
    info = machine_info()
    print("machine:", info.get("cpu"), "|", info.get("cores"), "cores | lldiff",
          info.get("lldiff_rev"))
    print(f"\nns per call, min (median) of {repeats} interleaved repeats of {number} calls")
    print(f"  {'':8} {'primal':>16} {'fwd over rev':>22} {'rev over fwd':>22}")
    for name, f, point, k in CASES:
        d = _dispatcher(f, "hessian benchmark")
        types = tuple(d._arg_type("a", p) for p in point)
        mask = [i == k for i in range(len(point))]
        prim = lldiff.jit(f)
        fo = d._derived(types, "hvp", mask, 1, seeded=(True,)).entry
        ro = d._derived(types, "hvp-rof", mask, 1, seeded=(True,)).entry
        a, b = fo(*point, 1.0)[-1], ro(*point, 1.0)[-1]
        assert abs(a - b) <= 1e-10 * abs(a) + 1e-14, (name, a, b)
        calls = {"primal": lambda: prim(*point), "fo": lambda: fo(*point, 1.0),
                 "ro": lambda: ro(*point, 1.0)}
        times = {key: [] for key in calls}
        for _ in range(repeats):
            for key, c in calls.items():
                times[key].append(timeit.timeit(c, number=number) / number * 1e9)
        base = min(times["primal"])
        cells = []
        for key in ("primal", "fo", "ro"):
            t = times[key]
            cell = f"{min(t):.0f} ({statistics.median(t):.0f})"
            if key != "primal":
                cell += f" {min(t) / base:.2f}x"
            cells.append(cell)
        print(f"  {name:8} {cells[0]:>16} {cells[1]:>22} {cells[2]:>22}")


if __name__ == "__main__":
    main()
