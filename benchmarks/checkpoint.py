#!/usr/bin/env python
"""Checkpointed reverse mode (grad(f, checkpoints=c)) against plain reverse mode: time and
tape memory, from one run.

Workloads (the chain recurrence of ../shared/notes/enzyme/chain.c, x0 = 1, theta = 0.5,
h = 1e-4):
  chain      x <- x + h sin(x) theta, a `for` loop of K steps (trip count known at entry)
  chain_dyn  the same as `while t < T: ...; t += h` (trip count unknown until it ends)
For plain reverse mode and for c = 5, 10, 20, 50, 100 snapshots: time per call (min of
repeats, and as a multiple of the primal's), the tape memory the runtime counted at its peak
(lldiff.runtime.counters: heap bytes of tapes; a tape's 4 KiB inline buffer in the native
stack frame is not counted), and the iterations recomputed against revolve's optimum
p(K, c) - (K - 1) (for: the first forward sweep already takes the snapshots) or p(K, c)
(while: revolve starts in the reverse sweep, from the initial state).

Usage
  python benchmarks/checkpoint.py             # K = 10^6, ~30 s
  python benchmarks/checkpoint.py --quick     # K = 10^5
"""

import argparse
import math
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from primal import machine_info  # noqa: E402


def chain(x0, theta, h, K):
    x = x0
    for k in range(K):
        x = x + h * math.sin(x) * theta
    return x


def chain_dyn(x0, theta, h, T):
    x = x0
    t = 0.0
    while t < T:
        x = x + h * math.sin(x) * theta
        t += h
    return x


def best(fn, args, repeats):
    out, ts = None, []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn(*args)
        ts.append(time.perf_counter() - t0)
    return min(ts), out


def main(argv=None):
    import lldiff
    from lldiff.passes.checkpoint import revolve_steps
    from lldiff.runtime import counters
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    K = 10 ** 5 if args.quick else 10 ** 6
    repeats = 5
    h = 1e-4
    info = machine_info()
    print("machine:", info.get("cpu"), "|", info.get("cores"), "cores | lldiff",
          info.get("lldiff_rev"))
    for name, f, last, first_sweep in [("chain", chain, K, True),
                                       ("chain_dyn", chain_dyn, (K - 0.5) * h, False)]:
        point = (1.0, 0.5, h, last)
        prim = lldiff.jit(f)
        prim(*point)
        tp, _ = best(prim, point, repeats)
        print(f"\n{name}: K = {K}, primal {tp * 1e3:.2f} ms ({tp / K * 1e9:.1f} ns/step)")
        print(f"  {'':10} {'ms/call':>9} {'x primal':>9} {'tape peak':>12} "
              f"{'recomputed':>11} {'revolve':>11}")
        plain = None
        for c in [None, 5, 10, 20, 50, 100]:
            g = lldiff.grad(prim, (0, 1), checkpoints=c)
            g(*point)
            counters(reset=True)
            t, out = best(g, point, repeats)
            cnt = counters(reset=True)
            if c is None:
                plain = out
            elif out != plain:
                raise SystemExit(f"{name} c={c}: gradient {out} differs from plain {plain}")
            steps = cnt["recomputed_steps"] // repeats
            opt = revolve_steps(K, c) - (K - 1 if first_sweep else 0) if c else 0
            if steps != opt:
                raise SystemExit(f"{name} c={c}: recomputed {steps}, revolve's optimum {opt}")
            label = "plain" if c is None else f"c = {c}"
            print(f"  {label:10} {t * 1e3:9.2f} {t / tp:9.2f} {cnt['tape_peak']:10d} B "
                  f"{steps:11d} {opt:11d}")
    print("\ngradients equal plain reverse mode bit for bit; recomputations equal revolve's")


if __name__ == "__main__":
    main()
