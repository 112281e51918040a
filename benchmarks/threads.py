#!/usr/bin/env python
"""Thread scaling of lldiff.vectorize: the Bessel value and gradient maps on 1..N threads.

z = 10 (i + 1/2) / n, v = 2 (the series converges later for larger z, so elements cost
unequal amounts), for n from 2*10^4 to 10^7 (--quick: to 10^6); ns per point, min of
interleaved repeats, on the native pool (helpers waiting in native code, batch.py
`_NativePool`) and on the Python pool (`_Pool`, which it replaced for plain maps; still used
with progress=True and off POSIX), alternated call by call so that both meet the same
machine. Every result is checked equal to the 1-thread map's, bit for bit.

Usage
  python benchmarks/threads.py             # threads 1, 2, 4, ... up to the CPUs
  python benchmarks/threads.py --quick
"""

import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)

from primal import _loadavg, besselj, machine_info  # noqa: E402


def main(argv=None):
    import numpy as np

    import lldiff
    from lldiff import batch
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    cpus = os.cpu_count() or 1
    threads = sorted({1} | {t for t in (2, 4, 8, 16, 32, 64) if t <= cpus} | {cpus})
    sizes = (2 * 10 ** 4, 10 ** 5, 10 ** 6) + (() if args.quick else (10 ** 7,))
    native = batch._NATIVE.supported()
    libc = batch._NATIVE._libc
    pools = ("native", "python") if native else ("python",)
    info = machine_info()
    print(f"machine: {info['cpu']}, {info['cores']} CPUs, load {_loadavg()}; python "
          f"{info['python']}, llvmlite {info['llvmlite']}, lldiff {info['lldiff_rev']}")
    f = lldiff.jit(besselj)
    g = lldiff.grad(f, argnums=1)
    print("ns/point, min of interleaved repeats; cells: " + " / ".join(pools) + " pool")
    print(f"{'':18}" + "".join(f"{str(t) + ' thr':>15}" for t in threads))
    for n in sizes:
        z = 10 * (np.arange(n) + 0.5) / n
        repeats = 5 if n >= 10 ** 7 else 9
        for name, fn in (("J_2", f), ("dJ_2/dz", g)):
            want = lldiff.vectorize(fn, threads=1)(2, z)
            cells = []
            for t in threads:
                vf = lldiff.vectorize(fn, threads=t)
                vf(2, z[:10_000])
                best = dict.fromkeys(pools, float("inf"))
                try:
                    for _ in range(repeats):
                        for pool in pools:
                            batch._NATIVE._libc = libc if pool == "native" else False
                            t0 = time.perf_counter()
                            got = vf(2, z)
                            best[pool] = min(best[pool], time.perf_counter() - t0)
                            if not np.array_equal(got, want):
                                raise SystemExit(f"{name}, n={n}, {t} threads, {pool} pool: "
                                                 "differs from the 1-thread map")
                finally:
                    batch._NATIVE._libc = libc
                cells.append(" / ".join(f"{best[p] / n * 1e9:.2f}" for p in pools))
            print(f"{name:8} n={n:<8.0e}" + "".join(f"{c:>15}" for c in cells), flush=True)


if __name__ == "__main__":
    main()
