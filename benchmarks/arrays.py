#!/usr/bin/env python
"""Array benchmark: every ratio from ONE run, variants interleaved.

Sections
  1. The seed's l2 norm over n = 10^6 doubles: the primal against its gradient x/|x| by
     lldiff's reverse mode -- the compiled vjp writing into a preallocated shadow (what the
     C harness of ../shared/notes/enzyme times: Enzyme 2.41x, hand-written 2.31x there), and
     lldiff.grad (which also allocates the zeroed gradient array) -- and a hand-written
     gradient compiled by numba.                                      goal <= 2.3
  2. ADBench's GMM objective (d = 10, K = 5, n = 1000 points of ../shared/adbench): the
     objective, its full gradient (330 parameters) by lldiff.grad, and by central finite
     differences (660 objective evaluations), with the largest relative difference; and,
     when autograd is installed (`pip install lldiff[bench]`), the objective written the way
     numpy users write it (vectorized, einsum) with its gradient by autograd.

Usage
  python benchmarks/arrays.py            # full run (~1 min)
  python benchmarks/arrays.py --quick    # smoke run
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
sys.path.insert(0, os.path.join(ROOT, "tests"))

from forward import _interleaved, _table  # noqa: E402
from primal import _cpu_model, _loadavg  # noqa: E402


def poorman_norm(x):
    nm2 = 0.0
    for i in range(len(x)):
        nm2 += x[i] * x[i]
    return math.sqrt(nm2)


def main(argv=None):
    import numba
    import numpy as np
    import lldiff
    from lldiff.ir import F64, memref
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    n = 10 ** 5 if args.quick else 10 ** 6
    repeats = 5 if args.quick else 21
    print(f"machine: {_cpu_model()}, load {_loadavg()}; lldiff {lldiff.__version__}, "
          f"numba {numba.__version__}, numpy {np.__version__}")

    # 1. l2 norm
    x = np.random.default_rng(0).normal(size=n)
    f = lldiff.jit(poorman_norm)
    spec = f._derived((memref(F64, 1),), "grad", (True,), seeded=(True,))
    shadow = np.zeros(n)
    grad = lldiff.grad(f)
    ff = lldiff.jit(poorman_norm, fastmath=True)  # sums reassociated: vector partial sums
    fspec = ff._derived((memref(F64, 1),), "grad", (True,), seeded=(True,))

    @numba.njit
    def nb_norm(x):
        s = 0.0
        for i in range(len(x)):
            s += x[i] * x[i]
        return math.sqrt(s)

    @numba.njit
    def nb_hand_grad(x, dx):
        s = 0.0
        for i in range(len(x)):
            s += x[i] * x[i]
        r = 1.0 / math.sqrt(s)
        for i in range(len(x)):
            dx[i] += x[i] * r
        return s

    f(x), spec.entry(x, shadow), grad(x), nb_norm(x), nb_hand_grad(x, shadow), ff(x)
    fspec.entry(x, shadow)
    shadow[:] = 0.0
    spec.entry(x, shadow)
    err = np.abs(shadow - x / np.linalg.norm(x)).max()
    variants = {
        "lldiff primal": lambda: f(x),
        "lldiff vjp into a given shadow": lambda: spec.entry(x, shadow),
        "lldiff.grad (allocates dx)": lambda: grad(x),
        "lldiff primal, fastmath": lambda: ff(x),
        "lldiff vjp, fastmath": lambda: fspec.entry(x, shadow),
        "numba primal": lambda: nb_norm(x),
        "numba hand-written gradient": lambda: nb_hand_grad(x, shadow),
    }
    times = _interleaved(variants, repeats)
    print(f"\n1. l2 norm of {n} doubles and its gradient: ns/element (min / median of "
          f"{repeats}), ratio to lldiff's primal (max |dx - x/|x|| = {err:.1e})")
    _table(times, n, "lldiff primal", "lldiff vjp into a given shadow", 2.3, width=34, digits=2)

    # 2. GMM
    from test_adbench import ADBENCH, gmm_objective, read_gmm
    path = os.path.join(ADBENCH, "gmm", "1k", "gmm_d10_K5.txt")
    if not os.path.exists(path):
        print("\n2. GMM: ../shared/adbench not found, skipped")
        return
    alphas, means, icf, xs, gamma, m = read_gmm(path)
    if args.quick:
        xs = xs[:100]
    g = lldiff.jit(gmm_objective)
    gg = lldiff.grad(g, argnums=(0, 1, 2))
    params = (alphas, means, icf)
    g(*params, xs, gamma, m)
    ga = gg(*params, xs, gamma, m)

    def fd_gradient():
        out = []
        h = 1e-6
        for k, p0 in enumerate(params):
            gk = np.zeros_like(p0)
            for idx in np.ndindex(p0.shape):
                hi, lo = [q.copy() for q in params], [q.copy() for q in params]
                hi[k][idx] += h
                lo[k][idx] -= h
                gk[idx] = (g(*hi, xs, gamma, m) - g(*lo, xs, gamma, m)) / (2 * h)
            out.append(gk)
        return out
    fd = fd_gradient()
    rel = max(np.abs(a - b).max() / max(1.0, np.abs(b).max()) for a, b in zip(ga, fd))
    reps = 3 if args.quick else 7
    times = _interleaved({"objective": lambda: g(*params, xs, gamma, m),
                          "lldiff.grad (330 parameters)": lambda: gg(*params, xs, gamma, m)},
                         reps)
    t_fd = min(_interleaved({"fd": fd_gradient}, 1)["fd"])
    print(f"\n2. ADBench GMM d=10 K=5 n={len(xs)}: ms (min of {reps}), ratio to the objective")
    base = min(times["objective"])
    for k, ts in times.items():
        print(f"   {k:34s} {min(ts) * 1e3:9.3f}   {min(ts) / base:7.2f}x")
    print(f"   {'central FD (660 evaluations)':34s} {t_fd * 1e3:9.3f}   {t_fd / base:7.2f}x")
    print(f"   largest difference lldiff vs FD, relative to the largest entry: {rel:.1e}")
    try:
        import autograd
        import autograd.numpy as anp
    except ImportError:
        print("   (autograd not installed: pip install lldiff[bench])")
        return
    value = gmm_numpy(anp, *params, xs, gamma, m)
    ag = autograd.grad(lambda a, mu, q: gmm_numpy(anp, a, mu, q, xs, gamma, m), (0, 1, 2))
    gag = ag(*params)
    agree = max(np.abs(a - b).max() / max(1.0, np.abs(b).max()) for a, b in zip(gag, ga))
    times = _interleaved({
        "lldiff objective (loops)": lambda: g(*params, xs, gamma, m),
        "numpy objective (vectorized)": lambda: gmm_numpy(np, *params, xs, gamma, m),
        "lldiff.grad": lambda: gg(*params, xs, gamma, m),
        "autograd grad of the numpy objective": lambda: ag(*params)}, reps)
    print(f"   numpy objective {value:.10f} vs lldiff {g(*params, xs, gamma, m):.10f}; "
          f"gradients agree to {agree:.1e}")
    for k, ts in times.items():
        print(f"   {k:38s} {min(ts) * 1e3:9.3f} ms")


def gmm_numpy(np, alphas, means, icf, x, gamma, m):
    """The GMM objective as numpy users write it (ADBench's autograd version, condensed):
    vectorized over points and components, L built by a constant scatter matrix."""
    import numpy as onp
    from scipy.special import multigammaln
    n, d = x.shape
    K = alphas.shape[0]
    Qdiags = np.exp(icf[:, :d])
    sum_qs = np.sum(icf[:, :d], axis=1)
    pairs = [(r, c) for c in range(d) for r in range(c + 1, d)]
    S = onp.zeros((len(pairs), d * d))
    for p, (r, c) in enumerate(pairs):
        S[p, r * d + c] = 1.0
    Ls = np.reshape(np.dot(icf[:, d:], S), (K, d, d))
    xc = x[:, None, :] - means[None, :, :]
    qx = Qdiags[None, :, :] * xc + np.einsum("kij,nkj->nki", Ls, xc)
    inner = alphas[None, :] + sum_qs[None, :] - 0.5 * np.sum(qx ** 2, axis=2)
    mx = np.max(inner, axis=1)
    slse = np.sum(np.log(np.sum(np.exp(inner - mx[:, None]), axis=1)) + mx)
    amx = np.max(alphas)
    lse_alphas = np.log(np.sum(np.exp(alphas - amx))) + amx
    nw = d + m + 1
    prior = np.sum(0.5 * gamma * gamma * (np.sum(Qdiags ** 2, axis=1) +
                                          np.sum(icf[:, d:] ** 2, axis=1)) - m * sum_qs)
    C = nw * d * (math.log(gamma) - 0.5 * math.log(2.0)) - multigammaln(0.5 * nw, d)
    return -n * d * 0.5 * math.log(2 * math.pi) + slse - n * lse_alphas + prior - K * C


if __name__ == "__main__":
    main()
