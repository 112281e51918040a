#!/usr/bin/env python
"""Peers benchmark: lldiff against the tools a user would pick instead, from ONE run.

Owns the cross-tool comparison: three workloads, each written the way that tool's users
write it, timed in one process (repeats interleaved across the tools of a workload), every
result checked, and the tables written to benchmarks/results/peers.{md,json,png}.

Workloads
  1. The Bessel series J_v(z) of primal.py (a `while` loop whose trip count depends on z),
     v = 2.0 a float, so math.gamma(v + 1) replaces math.factorial(v), which Python, numba
     and lldiff accept only for ints. Value, forward d/dz and reverse d/dz (only z is
     differentiated), checked against scipy.special.jv / jvp:
       (a) one call from Python at z = 0.5: us per call;
       (b) 10^6 points z_i = 10 (i + 1/2) / 10^6: ns per point.
  2. The l2 norm loop sqrt(sum x[i]^2) (arrays.py's poorman_norm) over float64 arrays of
     n = 10^3 and 10^6: value, and value with gradient x/|x|; us or ms per call. Also with
     fastmath=True in lldiff and numba (rows marked so): the sum may then be reassociated
     and vectorized, the choice JAX, PyTorch and Dr.Jit make for their sums.
  3. The chain x_{k+1} = x_k + h sin(x_k) theta of reverse.py, K = 10^5 steps: value, and
     value with gradient w.r.t. (x0, theta) by reverse mode; ms per call. Checked against a
     hand-written reverse sweep (chain_hand; its numba copy is timed, central FD compared).

Tools
  lldiff      jit, jvp / jacfwd, grad / value_and_grad / @jit_grad, vectorize on threads
  numba       @njit primal and hand-written derivatives, "the limit": J' = (J_{v-1} -
              J_{v+1}) / 2, x/|x|, a reverse sweep over a tape; loops and prange (batch.py)
  central FD  (f(x + h) - f(x - h)) / 2h, h = 1e-6, over the numba primal
  JAX         jax.jit, lax.while_loop, jax.jvp / jax.grad / jax.vmap, jax_enable_x64
  PyTorch     float64 tensors: a Python loop for one call, a masked loop over the whole
              array (until every element converged) for 10^6 points; torch.func.jvp,
              torch.autograd.grad
  autograd    numpy code: make_jvp, grad, elementwise_grad, value_and_grad
  Taichi      ti.init(arch=ti.cpu, default_fp=ti.f64): kernels, ti.ad.FwdMode, ti.ad.Tape,
              kernel.grad()
  Dr.Jit      drjit.llvm.ad.Float64 (the LLVM backend, CPU): dr.while_loop, dr.forward,
              dr.backward
  Rows marked "fixed 30 terms" run a different algorithm (a loop of static length, 30 terms
  suffice for z < 10), the workaround for tools that cannot differentiate the `while` loop.

Reading the tables
  * time: min and median of interleaved repeats, each after 0.1 s idle (so other tools'
    thread pools have stopped spinning), in the workload's unit; warm-up (tracing,
    compiling, first call) excluded and shown as "first call". x lldiff: the row's min over
    that of lldiff's reference row (*) of the workload; x numba (lldiff rows): over numba's
    row with the same thread count (its hand-written derivative in derivative workloads).
  * "cannot": the tool raised doing it; the error's first line is shown. "not installed":
    the import failed. "extrapolated": timed at a smaller K or n and scaled (linearly; FD
    gradients of the l2 norm by n^2) because the full size was estimated over a time budget.
  * err: the largest |got - ref| / max |ref| over the results (value, each gradient);
    WRONG above 1e-8 (AD and hand-written) or 1e-5 (finite differences).
  * Inputs are put into each tool's array type before timing; results stay in it, evaluated
    (block_until_ready, dr.eval + dr.sync_thread, ti.sync). lldiff and numba write batch
    results into preallocated arrays (as batch.py). Calls go through a Python lambda; its
    cost (printed) is in every per-call time.

Usage
  pip install -e ".[bench]"                           # lldiff, numba, scipy, autograd
  pip install jax torch taichi drjit matplotlib       # optional peers; any may be missing
  python benchmarks/peers.py            # full run (~3 min on 2 cores), writes results/
  python benchmarks/peers.py --quick    # smoke run (~30 s: 10^5 points, K = 10^4), prints
  python benchmarks/peers.py --tools lldiff,numba,JAX    # a subset of the tools
"""

import argparse
import datetime
import functools
import json
import math
import os
import statistics
import sys
import time
import timeit
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)

from arrays import poorman_norm  # noqa: E402
from forward import _table  # noqa: E402
from primal import _calibrate, _dist_version, _err, _loadavg, machine_info  # noqa: E402
from reverse import chain  # noqa: E402

EPS = 2.220446049250313e-16
V, Z1, H = 2.0, 0.5, 1e-6            # Bessel order, the one-call point, the FD step
X0, THETA, HSTEP = 0.3, 0.8, 1e-4    # the chain's x0, theta and h
TERMS = 30                           # the fixed-length variants' terms (enough for z < 10)
PEERS = ("JAX", "PyTorch", "autograd", "Taichi", "Dr.Jit")   # criterion 1's Python peers
TOOLS = ("lldiff", "numba", "central FD") + PEERS
TOL = {"fd": 1e-5}                   # WRONG above this error; 1e-8 for every other kind
CORES = os.cpu_count() or 1


def besselj(v, z):
    # primal.py's besselj with math.gamma(v + 1) for math.factorial(v): v is a float here
    k = 0
    s = (z / 2) ** v / math.gamma(v + 1)
    out = s
    while abs(s) > 2.220446049250313e-16:
        k += 1
        s *= -1 / k / (k + v) * (z / 2) ** 2
        out += s
    return out


def chain_hand(x0, theta, h, steps):
    """chain() and its gradient (d/dx0, d/dtheta) by a hand-written reverse sweep: the
    forward sweep keeps x_k on a tape, the reverse sweep runs back over it."""
    tape = np.empty(steps)
    x = x0
    for k in range(steps):
        tape[k] = x
        x = x + h * math.sin(x) * theta
    xbar, tbar = 1.0, 0.0
    for k in range(steps - 1, -1, -1):
        tbar += xbar * h * math.sin(tape[k])
        xbar *= 1.0 + h * math.cos(tape[k]) * theta
    return x, (xbar, tbar)


@functools.lru_cache(maxsize=None)
def _grid(n):
    return 10.0 * (np.arange(n) + 0.5) / n


@functools.lru_cache(maxsize=None)
def _l2x(n):
    return np.random.default_rng(0).normal(size=n)


@functools.lru_cache(maxsize=None)
def _reference(key, size):
    """The expected results of workload `key` at `size`, as a list of arrays."""
    from scipy.special import jv, jvp
    if key.startswith("bessel"):
        z = Z1 if key.endswith("call") else _grid(size)
        return [np.atleast_1d(jv(V, z) if "value" in key else jvp(V, z, 1))]
    if key.startswith("l2"):
        x = _l2x(size)
        nrm = math.sqrt(math.fsum(x * x))
        return [np.array([nrm])] + ([x / nrm] if "grad" in key else [])
    y, (g0, g1) = chain_hand(X0, THETA, HSTEP, size)
    return [np.array([y])] + ([np.array([g0]), np.array([g1])] if "grad" in key else [])


def _leaves(r):
    """A tool's result as a list of float64 arrays (tuples flattened, in order)."""
    if isinstance(r, (tuple, list)):
        return [leaf for x in r for leaf in _leaves(x)]
    if hasattr(r, "detach"):   # torch
        r = r.detach()
    for attr in ("to_numpy", "numpy"):   # Taichi fields; torch tensors, Dr.Jit arrays
        if not isinstance(r, np.ndarray) and hasattr(r, attr):
            r = getattr(r, attr)()
            break
    return [np.asarray(r, dtype=np.float64).ravel()]


def _check(key, row, result, size):
    got, want = _leaves(row["pick"](result)), _reference(key, size)
    if [g.shape for g in got] != [w.shape for w in want]:
        raise ValueError(f"result shapes {[g.shape for g in got]}, expected "
                         f"{[w.shape for w in want]}")
    return max(float(np.max(np.abs(g - w))) / max(float(np.max(np.abs(w))), 1e-300)
               for g, w in zip(got, want))


def _p10(n):
    e = round(math.log10(n))
    return f"10^{e}" if 10 ** e == n else str(n)


def _blocks(cfg):
    n, (ns, nl), k = cfg["points"], cfg["l2"], cfg["steps"]
    r = cfg["repeats"]
    spec = [
        ("bessel_value_call", f"Bessel J_2(z) value, one call at z = {Z1}", "us", None,
         "J, 1 call"),
        ("bessel_fwd_call", "Bessel d/dz by forward mode, one call", "us", None, "fwd, 1 call"),
        ("bessel_rev_call", "Bessel d/dz by reverse mode, one call", "us", None, "rev, 1 call"),
        ("bessel_value_batch", f"Bessel J_2(z), {_p10(n)} points", "ns/point", n,
         f"J, {_p10(n)} pts"),
        ("bessel_fwd_batch", f"Bessel d/dz by forward mode, {_p10(n)} points", "ns/point", n,
         f"fwd, {_p10(n)} pts"),
        ("bessel_rev_batch", f"Bessel d/dz by reverse mode, {_p10(n)} points", "ns/point", n,
         f"rev, {_p10(n)} pts"),
        ("l2_value_small", f"l2 norm, n = {_p10(ns)}", "us", ns, f"l2, n={_p10(ns)}"),
        ("l2_grad_small", f"l2 norm and gradient, n = {_p10(ns)}", "us", ns,
         f"l2 grad, n={_p10(ns)}"),
        ("l2_value_large", f"l2 norm, n = {_p10(nl)}", "ms", nl, f"l2, n={_p10(nl)}"),
        ("l2_grad_large", f"l2 norm and gradient, n = {_p10(nl)}", "ms", nl,
         f"l2 grad, n={_p10(nl)}"),
        ("chain_value", f"chain, K = {_p10(k)} steps, value", "ms", k, f"chain, K={_p10(k)}"),
        ("chain_grad", f"chain, K = {_p10(k)}, value and gradient w.r.t. (x0, theta)", "ms",
         k, "chain grad"),
    ]
    return [{"key": key, "title": title, "unit": unit, "size": size, "short": short,
             "repeats": r["batch" if "batch" in key else key.split("_")[0]]}
            for key, title, unit, size, short in spec]


def _shown(seconds, unit, size):
    """Seconds per call in the workload's unit."""
    return {"us": 1e6, "ms": 1e3}.get(unit, 1e9 / (size or 1)) * seconds


# --------------------------------------------------------------------------------------
# the tools: each adds its rows (one per workload it attempts) with add(...)
# --------------------------------------------------------------------------------------

def _mapped(vf, n, nout=1, keyword=True):
    """A thunk mapping vf over the grid into preallocated arrays: vf(V, z, out=...) for
    lldiff.vectorize, vf(V, z, out) for numba loops."""
    z = _grid(n)
    outs = tuple(np.empty(n) for _ in range(nout))
    if not keyword:
        return lambda: vf(V, z, outs[0]) or outs[0]
    out = outs[0] if nout == 1 else outs
    return lambda: vf(V, z, out=out)


def rows_lldiff(add, cfg):
    import lldiff
    f = lldiff.jit(besselj)
    jg = lldiff.jit_grad(besselj)
    jac = lldiff.jacfwd(f, argnums=1)
    grad = lldiff.grad(f, argnums=1)
    add("bessel_value_call", "lldiff.jit", thunk=lambda: f(V, Z1), star=True)
    add("bessel_fwd_call", "lldiff.jvp(f, (v, z), (None, 1.0))", star=True,
        thunk=lambda: lldiff.jvp(f, (V, Z1), (None, 1.0)), pick=lambda r: r[1])
    add("bessel_fwd_call", "lldiff.jacfwd(f, argnums=1)", thunk=lambda: jac(V, Z1))
    add("bessel_rev_call", "@lldiff.jit_grad: (J, (d/dv, d/dz))", star=True,
        thunk=lambda: jg(V, Z1), pick=lambda r: r[1][1])
    add("bessel_rev_call", "lldiff.grad(f, argnums=1)", thunk=lambda: grad(V, Z1))
    for t in sorted({CORES, 1}, reverse=True):
        for key, g, how, nout in (
                ("value", f, "vectorize(f)", 1),
                ("fwd", jac, "vectorize(jacfwd(f, argnums=1))", 2),
                ("rev", grad, "vectorize(grad(f, argnums=1))", 2)):
            vf = lldiff.vectorize(g, threads=t)
            add(f"bessel_{key}_batch", how, threads=t, star=t == CORES,
                make=lambda n, vf=vf, nout=nout: _mapped(vf, n, nout))
    nrm = lldiff.jit(poorman_norm)
    nrm_jg = lldiff.jit_grad(poorman_norm)
    nrm_vg = lldiff.value_and_grad(nrm)
    # fastmath: the sum may be reassociated (vectorized), as JAX's and PyTorch's sums are
    nrm_fast = lldiff.jit(poorman_norm, fastmath=True)
    nrm_fast_jg = lldiff.jit_grad(poorman_norm, fastmath=True)
    for size in ("small", "large"):
        add(f"l2_value_{size}", "lldiff.jit", star=True,
            make=lambda n: functools.partial(nrm, _l2x(n)))
        add(f"l2_grad_{size}", "@lldiff.jit_grad: (|x|, x/|x|)", star=True,
            make=lambda n: functools.partial(nrm_jg, _l2x(n)))
        add(f"l2_grad_{size}", "lldiff.value_and_grad(f)",
            make=lambda n: functools.partial(nrm_vg, _l2x(n)))
        add(f"l2_value_{size}", "lldiff.jit(fastmath=True)", fast=True,
            make=lambda n: functools.partial(nrm_fast, _l2x(n)))
        add(f"l2_grad_{size}", "@lldiff.jit_grad(fastmath=True)", fast=True,
            make=lambda n: functools.partial(nrm_fast_jg, _l2x(n)))
    ch = lldiff.jit(chain)
    ch_vg = lldiff.value_and_grad(ch, argnums=(0, 1))
    ch_jg = lldiff.jit_grad(chain)
    add("chain_value", "lldiff.jit", star=True,
        make=lambda k: lambda: ch(X0, THETA, HSTEP, k))
    add("chain_grad", "lldiff.value_and_grad(f, argnums=(0, 1))", star=True,
        make=lambda k: lambda: ch_vg(X0, THETA, HSTEP, k))
    add("chain_grad", "@lldiff.jit_grad (also d/dh)", pick=lambda r: (r[0], r[1][:2]),
        make=lambda k: lambda: ch_jg(X0, THETA, HSTEP, k))


def rows_numba(add, cfg):
    """numba: the primal, the hand-written derivatives, and central FD over the primal."""
    import numba
    nb_j = numba.njit(besselj)

    @numba.njit
    def rule(v, z):
        return 0.5 * (nb_j(v - 1, z) - nb_j(v + 1, z))

    @numba.njit
    def fd(v, z):
        return (nb_j(v, z + H) - nb_j(v, z - H)) / (2 * H)

    @numba.njit
    def values(v, z, out):
        for i in range(len(z)):
            out[i] = nb_j(v, z[i])

    @numba.njit(parallel=True)
    def values_par(v, z, out):
        for i in numba.prange(len(z)):
            out[i] = nb_j(v, z[i])

    @numba.njit
    def rules(v, z, out):
        for i in range(len(z)):
            out[i] = rule(v, z[i])

    @numba.njit(parallel=True)
    def rules_par(v, z, out):
        for i in numba.prange(len(z)):
            out[i] = rule(v, z[i])

    @numba.njit
    def fds(v, z, out):
        for i in range(len(z)):
            out[i] = fd(v, z[i])

    add("bessel_value_call", "@njit", thunk=lambda: nb_j(V, Z1), kind="primal")
    for key in ("fwd", "rev"):
        add(f"bessel_{key}_call", "hand rule (J_{v-1} - J_{v+1}) / 2", kind="hand",
            thunk=lambda: rule(V, Z1))
        add(f"bessel_{key}_call", "(J(z + h) - J(z - h)) / 2h", tool="central FD", kind="fd",
            thunk=lambda: fd(V, Z1))
    par = numba.get_num_threads()
    add("bessel_value_batch", "loop over @njit J", kind="primal",
        make=lambda n: _mapped(values, n, keyword=False))
    add("bessel_value_batch", "prange over @njit J", kind="primal", threads=par,
        make=lambda n: _mapped(values_par, n, keyword=False))
    for key in ("fwd", "rev"):
        add(f"bessel_{key}_batch", "loop over the hand rule", kind="hand",
            make=lambda n: _mapped(rules, n, keyword=False))
        add(f"bessel_{key}_batch", "prange over the hand rule", kind="hand", threads=par,
            make=lambda n: _mapped(rules_par, n, keyword=False))
        add(f"bessel_{key}_batch", "loop over central FD", tool="central FD", kind="fd",
            make=lambda n: _mapped(fds, n, keyword=False))

    nb_norm = numba.njit(poorman_norm)

    def norm_grad_py(x):
        s = 0.0
        for i in range(len(x)):
            s += x[i] * x[i]
        r = math.sqrt(s)
        g = np.empty_like(x)
        for i in range(len(x)):
            g[i] = x[i] / r
        return r, g
    norm_grad = numba.njit(norm_grad_py)
    nb_norm_fast = numba.njit(fastmath=True)(poorman_norm)
    norm_grad_fast = numba.njit(fastmath=True)(norm_grad_py)

    @numba.njit
    def norm_fd(x):
        y = x.copy()
        g = np.empty_like(x)
        for i in range(len(x)):
            xi = y[i]
            y[i] = xi + H
            fp = nb_norm(y)
            y[i] = xi - H
            fm = nb_norm(y)
            y[i] = xi
            g[i] = (fp - fm) / (2 * H)
        return nb_norm(x), g

    for size in ("small", "large"):
        add(f"l2_value_{size}", "@njit", kind="primal",
            make=lambda n: functools.partial(nb_norm, _l2x(n)))
        add(f"l2_grad_{size}", "hand-written x/|x| (two passes)", kind="hand",
            make=lambda n: functools.partial(norm_grad, _l2x(n)))
        add(f"l2_value_{size}", "@njit(fastmath=True)", kind="primal", fast=True,
            make=lambda n: functools.partial(nb_norm_fast, _l2x(n)))
        add(f"l2_grad_{size}", "hand-written x/|x|, @njit(fastmath=True)", kind="hand",
            fast=True, make=lambda n: functools.partial(norm_grad_fast, _l2x(n)))
        add(f"l2_grad_{size}", "n central differences of @njit norm", tool="central FD",
            kind="fd", bounded=(cfg["l2"][0], 2),
            make=lambda n: functools.partial(norm_fd, _l2x(n)))

    nb_chain = numba.njit(chain)
    nb_hand = numba.njit(chain_hand)

    @numba.njit
    def chain_fd(x0, theta, h, steps):
        d0 = (nb_chain(x0 + H, theta, h, steps) - nb_chain(x0 - H, theta, h, steps)) / (2 * H)
        d1 = (nb_chain(x0, theta + H, h, steps) - nb_chain(x0, theta - H, h, steps)) / (2 * H)
        return nb_chain(x0, theta, h, steps), (d0, d1)

    add("chain_value", "@njit", kind="primal",
        make=lambda k: lambda: nb_chain(X0, THETA, HSTEP, k))
    add("chain_grad", "hand-written reverse sweep over a tape", kind="hand",
        make=lambda k: lambda: nb_hand(X0, THETA, HSTEP, k))
    add("chain_grad", "central differences of @njit chain", tool="central FD", kind="fd",
        make=lambda k: lambda: chain_fd(X0, THETA, HSTEP, k))


def rows_jax(add, cfg):
    import jax
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    from jax import lax
    from jax.scipy.special import gamma

    def besselj_jax(v, z):
        def cond(c):
            return jnp.abs(c[1]) > EPS

        def body(c):
            k, s, out = c
            k = k + 1
            s = s * (-1 / k / (k + v) * (z / 2) ** 2)
            return k, s, out + s

        s = (z / 2) ** v / gamma(v + 1)
        return lax.while_loop(cond, body, (0, s, s))[2]

    def besselj_fixed(v, z):
        def body(k, c):
            s, out = c
            s = s * (-1 / k / (k + v) * (z / 2) ** 2)
            return s, out + s

        s = (z / 2) ** v / gamma(v + 1)
        return lax.fori_loop(1, TERMS + 1, body, (s, s))[1]

    def dz(f):
        return lambda v, z: jax.jvp(lambda z: f(v, z), (z,), (jnp.ones_like(z),))[1]

    def ready(f):
        return lambda *a: jax.block_until_ready(f(*a))

    val = ready(jax.jit(besselj_jax))
    fwd = ready(jax.jit(dz(besselj_jax)))
    rev = ready(jax.jit(jax.grad(besselj_jax, argnums=1)))
    rev_fixed = ready(jax.jit(jax.grad(besselj_fixed, argnums=1)))
    fixed = f"fixed {TERMS} terms: fori_loop, static bounds"
    add("bessel_value_call", "jit(f), lax.while_loop", thunk=lambda: val(V, Z1))
    add("bessel_fwd_call", "jit(jvp(f))", thunk=lambda: fwd(V, Z1))
    add("bessel_rev_call", "jit(grad(f, argnums=1))", thunk=lambda: rev(V, Z1))
    add("bessel_rev_call", "jit(grad(f)), " + fixed, thunk=lambda: rev_fixed(V, Z1))
    vmap = functools.partial(jax.vmap, in_axes=(None, 0))
    for key, how, g in (
            ("value", "jit(vmap(f))", besselj_jax),
            ("fwd", "jit(vmap(jvp(f)))", dz(besselj_jax)),
            ("rev", "jit(vmap(grad(f, argnums=1)))", jax.grad(besselj_jax, argnums=1)),
            ("rev", "jit(vmap(grad(f))), " + fixed, jax.grad(besselj_fixed, argnums=1))):
        vg = ready(jax.jit(vmap(g)))
        add(f"bessel_{key}_batch", how, threads=f"{CORES} (XLA)",
            make=lambda n, vg=vg: functools.partial(vg, V, jnp.asarray(_grid(n))))

    def norm(x):
        return jnp.sqrt(jnp.sum(x * x))

    jn, jvg = ready(jax.jit(norm)), ready(jax.jit(jax.value_and_grad(norm)))
    for size in ("small", "large"):
        add(f"l2_value_{size}", "jit(jnp.sqrt(jnp.sum(x * x)))", threads=f"{CORES} (XLA)",
            make=lambda n: functools.partial(jn, jnp.asarray(_l2x(n))))
        add(f"l2_grad_{size}", "jit(value_and_grad(f))", threads=f"{CORES} (XLA)",
            make=lambda n: functools.partial(jvg, jnp.asarray(_l2x(n))))

    def chain_jax(x0, theta, h, steps):
        return lax.fori_loop(0, steps, lambda k, x: x + h * jnp.sin(x) * theta, x0)

    cv = ready(jax.jit(chain_jax, static_argnums=3))
    cg = ready(jax.jit(jax.value_and_grad(chain_jax, argnums=(0, 1)), static_argnums=3))
    add("chain_value", "jit(f), lax.fori_loop", make=lambda k: lambda: cv(X0, THETA, HSTEP, k))
    add("chain_grad", "jit(value_and_grad(f, argnums=(0, 1)))",
        make=lambda k: lambda: cg(X0, THETA, HSTEP, k))


def rows_torch(add, cfg):
    import torch
    f64 = torch.float64
    threads = torch.get_num_threads()

    def besselj_torch(v, z):   # z: a 0-d tensor; plain Python control flow
        k = 0
        s = (z / 2) ** v / math.gamma(v + 1)
        out = s
        while abs(s) > EPS:
            k += 1
            s = s * (-1 / k / (k + v) * (z / 2) ** 2)
            out = out + s
        return out

    def besselj_masked(v, z):   # z: a tensor; iterate until every element has converged
        q = (z / 2) ** 2
        s = (z / 2) ** v / math.gamma(v + 1)
        out = s
        k = 0
        active = s.abs() > EPS
        while active.any():
            k += 1
            s = torch.where(active, s * (-1 / k / (k + v)) * q, s)
            out = out + torch.where(active, s, 0.0)
            active = s.abs() > EPS
        return out

    def value(f, z):
        with torch.no_grad():
            return f(V, z)

    def rev(f, z):
        z = z.detach().requires_grad_()
        return torch.autograd.grad(f(V, z).sum(), z)[0]

    def fwd(f, z):
        return torch.func.jvp(functools.partial(f, V), (z,), (torch.ones_like(z),))[1]

    add("bessel_value_call", "Python loop, no_grad",
        thunk=lambda: value(besselj_torch, torch.tensor(Z1, dtype=f64)))
    add("bessel_fwd_call", "Python loop, torch.func.jvp",
        thunk=lambda: fwd(besselj_torch, torch.tensor(Z1, dtype=f64)))
    add("bessel_rev_call", "Python loop, autograd.grad",
        thunk=lambda: rev(besselj_torch, torch.tensor(Z1, dtype=f64)))
    for key, how, g in (("value", "masked loop, no_grad", value),
                        ("fwd", "masked loop, torch.func.jvp", fwd),
                        ("rev", "masked loop, autograd.grad(y.sum())", rev)):
        add(f"bessel_{key}_batch", how, threads=threads,
            make=lambda n, g=g: functools.partial(g, besselj_masked,
                                                  torch.from_numpy(_grid(n))))

    def norm(x):
        return torch.sqrt(torch.sum(x * x))

    def norm_vg(x):
        x = x.detach().requires_grad_()
        y = norm(x)
        return y.detach(), torch.autograd.grad(y, x)[0]

    for size in ("small", "large"):
        add(f"l2_value_{size}", "torch.sqrt(torch.sum(x * x)), no_grad", threads=threads,
            make=lambda n: functools.partial(value, lambda v, x: norm(x),
                                             torch.from_numpy(_l2x(n))))
        add(f"l2_grad_{size}", "autograd.grad", threads=threads,
            make=lambda n: functools.partial(norm_vg, torch.from_numpy(_l2x(n))))

    def chain_torch(x0, theta, h, steps):
        x = x0
        for k in range(steps):
            x = x + h * torch.sin(x) * theta
        return x

    def chain_value(k):
        with torch.no_grad():
            return chain_torch(torch.tensor(X0, dtype=f64), torch.tensor(THETA, dtype=f64),
                               HSTEP, k)

    def chain_vg(k):
        x0 = torch.tensor(X0, dtype=f64, requires_grad=True)
        theta = torch.tensor(THETA, dtype=f64, requires_grad=True)
        y = chain_torch(x0, theta, HSTEP, k)
        return y.detach(), torch.autograd.grad(y, (x0, theta))

    small = max(cfg["steps"] // 10, 1)
    add("chain_value", "Python loop, no_grad", bounded=(small, 1),
        make=lambda k: functools.partial(chain_value, k))
    add("chain_grad", "Python loop, autograd.grad", bounded=(small, 1),
        make=lambda k: functools.partial(chain_vg, k))


def rows_autograd(add, cfg):
    import autograd.numpy as anp
    from autograd import elementwise_grad, grad, make_jvp, value_and_grad

    def besselj_ag(v, z):
        k = 0
        s = (z / 2) ** v / math.gamma(v + 1)
        out = s
        while anp.abs(s) > EPS:
            k += 1
            s = s * (-1 / k / (k + v) * (z / 2) ** 2)
            out = out + s
        return out

    def besselj_masked(v, z):
        q = (z / 2) ** 2
        s = (z / 2) ** v / math.gamma(v + 1)
        out = s
        k = 0
        active = anp.abs(s) > EPS
        while anp.any(active):
            k += 1
            s = anp.where(active, s * (-1 / k / (k + v)) * q, s)
            out = out + anp.where(active, s, 0.0)
            active = anp.abs(s) > EPS
        return out

    def fwd(f, z):
        return make_jvp(functools.partial(f, V))(z)(anp.ones_like(z))[1]

    g1, gn = grad(besselj_ag, 1), elementwise_grad(besselj_masked, 1)
    add("bessel_value_call", "numpy code", thunk=lambda: besselj_ag(V, Z1))
    add("bessel_fwd_call", "make_jvp", thunk=lambda: fwd(besselj_ag, Z1))
    add("bessel_rev_call", "grad(f, 1)", thunk=lambda: g1(V, Z1))
    add("bessel_value_batch", "masked numpy loop",
        make=lambda n: functools.partial(besselj_masked, V, _grid(n)))
    add("bessel_fwd_batch", "masked numpy loop, make_jvp",
        make=lambda n: functools.partial(fwd, besselj_masked, _grid(n)))
    add("bessel_rev_batch", "masked numpy loop, elementwise_grad",
        make=lambda n: functools.partial(gn, V, _grid(n)))

    def norm(x):
        return anp.sqrt(anp.sum(x * x))

    norm_vg = value_and_grad(norm)
    for size in ("small", "large"):
        add(f"l2_value_{size}", "anp.sqrt(anp.sum(x * x))",
            make=lambda n: functools.partial(norm, _l2x(n)))
        add(f"l2_grad_{size}", "value_and_grad(f)",
            make=lambda n: functools.partial(norm_vg, _l2x(n)))

    def chain_ag(x0, theta, h, steps):
        x = x0
        for k in range(steps):
            x = x + h * anp.sin(x) * theta
        return x

    chain_vg = value_and_grad(chain_ag, (0, 1))
    small = max(cfg["steps"] // 10, 1)
    add("chain_value", "Python loop", bounded=(small, 1),
        make=lambda k: functools.partial(chain_ag, X0, THETA, HSTEP, k))
    add("chain_grad", "Python loop, value_and_grad(f, (0, 1))", bounded=(small, 1),
        make=lambda k: functools.partial(chain_vg, X0, THETA, HSTEP, k))


def rows_taichi(add, cfg):
    import taichi as ti
    ti.init(arch=ti.cpu, default_fp=ti.f64)
    f64 = ti.f64
    G = math.gamma(V + 1)   # Taichi has no gamma(): the constant is computed in Python

    @ti.func
    def bj(v, z) -> f64:
        k = 0
        s = ti.pow(z / 2, v) / G
        out = s
        while ti.abs(s) > EPS:
            k += 1
            s *= -1 / k / (k + v) * (z / 2) ** 2
            out += s
        return out

    @ti.func
    def bj_fixed(v, z) -> f64:   # unrolled at compile time (ti.static)
        s = ti.pow(z / 2, v) / G
        out = s
        for k in ti.static(range(1, TERMS + 1)):
            s *= -1 / k / (k + v) * (z / 2) ** 2
            out += s
        return out

    @ti.func
    def bj_fixed_loop(v, z) -> f64:   # the same with a runtime loop
        s = ti.pow(z / 2, v) / G
        out = s
        for k in range(1, TERMS + 1):
            s *= -1 / k / (k + v) * (z / 2) ** 2
            out += s
        return out

    @ti.kernel
    def bessel_one(v: f64, z: f64) -> f64:
        return bj(v, z)

    z0 = ti.field(f64, shape=(), needs_grad=True, needs_dual=True)
    y0 = ti.field(f64, shape=(), needs_grad=True, needs_dual=True)

    @ti.kernel
    def bessel_0d(v: f64):
        y0[None] = bj(v, z0[None])

    @ti.kernel
    def bessel_0d_fixed(v: f64):
        y0[None] = bj_fixed(v, z0[None])

    def fwd_one():
        z0[None] = Z1
        with ti.ad.FwdMode(loss=y0, param=z0):
            bessel_0d(V)
        return y0.dual[None]

    def rev_one(kernel):
        z0[None] = Z1
        with ti.ad.Tape(loss=y0):
            kernel(V)
        return z0.grad[None]

    fixed = f"fixed {TERMS} terms, ti.static-unrolled"
    add("bessel_value_call", "kernel returning f64", thunk=lambda: bessel_one(V, Z1))
    add("bessel_fwd_call", "ti.ad.FwdMode on 0-d fields", thunk=fwd_one)
    add("bessel_rev_call", "ti.ad.Tape on 0-d fields", thunk=lambda: rev_one(bessel_0d))
    add("bessel_rev_call", "ti.ad.Tape, " + fixed, thunk=lambda: rev_one(bessel_0d_fixed))

    @ti.kernel
    def bessel_map(z: ti.template(), y: ti.template(), v: f64):
        for i in z:
            y[i] = bj(v, z[i])

    @ti.kernel
    def bessel_map_fixed(z: ti.template(), y: ti.template(), v: f64):
        for i in z:
            y[i] = bj_fixed(v, z[i])

    @ti.kernel
    def bessel_map_loop(z: ti.template(), y: ti.template(), v: f64):
        for i in z:
            y[i] = bj_fixed_loop(v, z[i])

    @functools.lru_cache(maxsize=None)
    def fields(n):
        z = ti.field(f64, shape=n, needs_grad=True, needs_dual=True)
        y = ti.field(f64, shape=n, needs_grad=True, needs_dual=True)
        z.from_numpy(_grid(n))
        return z, y

    def value(n):
        z, y = fields(n)
        bessel_map(z, y, V)
        ti.sync()
        return y

    def fwd(n):
        z, y = fields(n)
        with ti.ad.FwdMode(loss=y, param=z, seed=[1.0] * n):
            bessel_map(z, y, V)
        ti.sync()
        return y.dual

    def rev(kernel, n):
        z, y = fields(n)
        kernel(z, y, V)
        z.grad.fill(0.0)
        y.grad.fill(1.0)
        kernel.grad(z, y, V)
        ti.sync()
        return z.grad

    add("bessel_value_batch", "kernel over a field", threads=CORES,
        make=lambda n: functools.partial(value, n))
    add("bessel_fwd_batch", "ti.ad.FwdMode, seed = ones", threads=CORES,
        make=lambda n: functools.partial(fwd, n))
    for how, kernel in (("kernel.grad()", bessel_map),
                        ("kernel.grad(), " + fixed, bessel_map_fixed),
                        (f"kernel.grad(), fixed {TERMS} terms, runtime range loop",
                         bessel_map_loop)):
        add("bessel_rev_batch", how, threads=CORES,
            make=lambda n, kernel=kernel: functools.partial(rev, kernel, n))

    @ti.kernel
    def sumsq(x: ti.template(), s: ti.template()):
        for i in x:
            s[None] += x[i] * x[i]

    @ti.kernel
    def root(s: ti.template(), nrm: ti.template()):
        nrm[None] = ti.sqrt(s[None])

    @functools.lru_cache(maxsize=None)
    def l2_fields(n):
        x = ti.field(f64, shape=n, needs_grad=True)
        s = ti.field(f64, shape=(), needs_grad=True)
        nrm = ti.field(f64, shape=(), needs_grad=True)
        x.from_numpy(_l2x(n))
        return x, s, nrm

    def norm(n):
        x, s, nrm = l2_fields(n)
        s[None] = 0.0
        sumsq(x, s)
        root(s, nrm)
        return nrm

    def norm_grad(n):
        x, s, nrm = l2_fields(n)
        s[None] = 0.0
        with ti.ad.Tape(loss=nrm):
            sumsq(x, s)
            root(s, nrm)
        return nrm, x.grad

    for size in ("small", "large"):
        add(f"l2_value_{size}", "kernels: atomic sum, sqrt", threads=CORES,
            make=lambda n: functools.partial(norm, n))
        add(f"l2_grad_{size}", "ti.ad.Tape", threads=CORES,
            make=lambda n: functools.partial(norm_grad, n))

    @ti.kernel
    def chain_value(x0: f64, theta: f64, h: f64, steps: ti.i32) -> f64:
        x = x0
        ti.loop_config(serialize=True)
        for k in range(steps):
            x = x + h * ti.sin(x) * theta
        return x

    @ti.kernel
    def chain_start(xs: ti.template(), x0: ti.template()):
        xs[0] = x0[None]

    @ti.kernel
    def chain_step(xs: ti.template(), theta: ti.template(), h: f64, k: ti.i32):
        xs[k + 1] = xs[k] + h * ti.sin(xs[k]) * theta[None]

    @ti.kernel
    def chain_steps(xs: ti.template(), theta: ti.template(), h: f64, steps: ti.i32):
        ti.loop_config(serialize=True)
        for k in range(steps):
            xs[k + 1] = xs[k] + h * ti.sin(xs[k]) * theta[None]

    @ti.kernel
    def chain_finish(xs: ti.template(), out: ti.template(), k: ti.i32):
        out[None] = xs[k]

    @functools.lru_cache(maxsize=None)
    def chain_fields(k):
        return (ti.field(f64, shape=k + 1, needs_grad=True),) + tuple(
            ti.field(f64, shape=(), needs_grad=True) for _ in range(3))

    def chain_vg(k, one_kernel):
        xs, x0, theta, out = chain_fields(k)
        x0[None], theta[None] = X0, THETA
        with ti.ad.Tape(loss=out):
            chain_start(xs, x0)
            if one_kernel:
                chain_steps(xs, theta, HSTEP, k)
            else:   # one kernel launch per step, as Taichi's differentiable simulations
                for i in range(k):
                    chain_step(xs, theta, HSTEP, i)
            chain_finish(xs, out, k)
        return out, x0.grad, theta.grad

    add("chain_value", "kernel, serialized loop",
        make=lambda k: functools.partial(chain_value, X0, THETA, HSTEP, k))
    add("chain_grad", "ti.ad.Tape, one kernel launch per step",
        bounded=(max(cfg["steps"] // 10, 1), 1),
        make=lambda k: functools.partial(chain_vg, k, False))
    add("chain_grad", "ti.ad.Tape, one kernel, serialized loop over a field",
        make=lambda k: functools.partial(chain_vg, k, True))


def rows_drjit(add, cfg):
    import drjit as dr
    from drjit.llvm.ad import Float64, Int64
    threads = dr.thread_count()

    def besselj_dr(v, z, max_iterations=None):
        def cond(k, s, out):
            return dr.abs(s) > EPS

        def body(k, s, out):
            k += 1
            s = s * (-1 / Float64(k) / (Float64(k) + v) * (z / 2) ** 2)
            return k, s, out + s

        s = (z / 2) ** v / math.gamma(v + 1)
        return dr.while_loop((Int64(0), s, Float64(s)), cond, body,
                             max_iterations=max_iterations)[2]

    def done(*xs):
        dr.eval(*xs)
        dr.sync_thread()
        return xs[0] if len(xs) == 1 else xs

    def value(z):
        return done(besselj_dr(V, Float64(z)))

    def fwd(z):
        z = Float64(z)
        dr.enable_grad(z)
        y = besselj_dr(V, z)
        dr.forward(z)
        return done(dr.grad(y))

    def rev(z, max_iterations=None):
        z = Float64(z)
        dr.enable_grad(z)
        dr.backward(besselj_dr(V, z, max_iterations))
        return done(dr.grad(z))

    hint = "dr.backward, while_loop(max_iterations=64)"
    add("bessel_value_call", "dr.while_loop", thunk=lambda: value(Z1))
    add("bessel_fwd_call", "dr.while_loop, dr.forward", thunk=lambda: fwd(Z1))
    add("bessel_rev_call", "dr.while_loop, dr.backward", thunk=lambda: rev(Z1))
    add("bessel_rev_call", hint, thunk=lambda: rev(Z1, 64))
    for key, how, g in (("value", "dr.while_loop", value),
                        ("fwd", "dr.while_loop, dr.forward", fwd),
                        ("rev", "dr.while_loop, dr.backward", rev),
                        ("rev", hint, lambda z: rev(z, 64))):
        add(f"bessel_{key}_batch", how, threads=threads,
            make=lambda n, g=g: functools.partial(g, Float64(_grid(n))))

    def norm(x):
        return dr.sqrt(dr.sum(x * x))

    def norm_vg(x):
        x = Float64(x)
        dr.enable_grad(x)
        y = norm(x)
        dr.backward(y)
        return done(y, dr.grad(x))

    for size in ("small", "large"):
        add(f"l2_value_{size}", "dr.sqrt(dr.sum(x * x))", threads=threads,
            make=lambda n: lambda x=Float64(_l2x(n)): done(norm(x)))
        add(f"l2_grad_{size}", "dr.backward", threads=threads,
            make=lambda n: functools.partial(norm_vg, Float64(_l2x(n))))

    def chain_dr(x0, theta, h, steps, **loop):
        def body(k, x):
            return k + 1, x + h * dr.sin(x) * theta
        return dr.while_loop((Int64(0), x0), lambda k, x: k < steps, body, **loop)[1]

    def chain_vg(k, **loop):
        x0, theta = Float64(X0), Float64(THETA)
        dr.enable_grad(x0, theta)
        y = chain_dr(x0, theta, HSTEP, k, **loop)
        dr.backward(y)
        return done(y, dr.grad(x0), dr.grad(theta))

    add("chain_value", "dr.while_loop",
        make=lambda k: lambda: done(chain_dr(Float64(X0), Float64(THETA), HSTEP, k)))
    add("chain_grad", "dr.backward, while_loop(max_iterations=K)",
        make=lambda k: functools.partial(chain_vg, k, max_iterations=k))
    add("chain_grad", "dr.backward, while_loop(mode='evaluated')",
        bounded=(max(cfg["steps"] // 10, 1), 1),
        make=lambda k: functools.partial(chain_vg, k, mode="evaluated"))


TOOL_ROWS = (("lldiff", rows_lldiff), ("numba", rows_numba), ("JAX", rows_jax),
             ("PyTorch", rows_torch), ("autograd", rows_autograd), ("Taichi", rows_taichi),
             ("Dr.Jit", rows_drjit))
TOOL_MODULES = {"JAX": ("jax", "jaxlib"), "PyTorch": ("torch",), "autograd": ("autograd",),
                "Taichi": ("taichi",), "Dr.Jit": ("drjit",), "numba": ("numba",),
                "lldiff": ("lldiff",)}


def make_rows(blocks, cfg, tools):
    """Every tool's rows, grouped by workload; a tool whose import or set-up fails gets one
    row per workload saying so."""
    rows = {b["key"]: [] for b in blocks}
    for name, fn in TOOL_ROWS:
        if name not in tools:
            continue

        def add(key, how, thunk=None, make=None, tool=name, kind="ad", threads=1,
                pick=None, bounded=None, star=False, fast=False):
            if key in rows:
                rows[key].append({
                    "tool": tool, "how": how, "threads": threads, "kind": kind,
                    "star": star, "status": "ok", "bounded": bounded, "fast": fast,
                    "make": make or (lambda size: thunk), "pick": pick or (lambda r: r)})

        t0 = time.perf_counter()
        try:
            fn(add, cfg)
        except Exception as e:
            status = "not installed" if isinstance(e, ImportError) else "cannot"
            for key, rs in rows.items():
                if not any(r["tool"] == name for r in rs):
                    rs.append({"tool": name, "how": "-", "threads": "-", "kind": "ad",
                               "star": False, "status": status,
                               "reason": ("set-up failed: " if status == "cannot" else "")
                               + _err(e)})
        print(f"   {name}: set up in {time.perf_counter() - t0:.1f} s")
    return rows


# --------------------------------------------------------------------------------------
# running a workload
# --------------------------------------------------------------------------------------

def _prepare(block, row, cfg):
    """Warm up, check and calibrate one row: (timer, calls per sample, scale factor)."""
    size, factor = block["size"], 1.0
    if row["bounded"] and size and size > row["bounded"][0]:
        small, power = row["bounded"]
        thunk = row["make"](small)
        thunk()
        t0 = time.perf_counter()
        thunk()
        est = (time.perf_counter() - t0) * (size / small) ** power
        row["estimate_s"] = est
        if est > cfg["budget_s"]:
            size, factor = small, (size / small) ** power
            row["extrapolated_from"] = small
    thunk = row["make"](size)
    t0 = time.perf_counter()
    result = thunk()
    row["first_s"] = time.perf_counter() - t0
    row["size"] = size
    row["err"] = _check(block["key"], row, result, size)
    if row["err"] > TOL.get(row["kind"], 1e-8):
        row["status"] = "WRONG"
    timer = timeit.Timer(thunk)
    return timer, _calibrate(timer, cfg["target_s"]), factor


def _interleaved(variants, repeats, pause):
    """forward.py's interleaved repeats, with the machine left idle for `pause` seconds
    before each timing: thread pools spin after their work (numba's OpenMP layer after a
    prange, measured here: the next 2-thread map ran 1.3x slower), and a pool spinning on
    a core would be charged to whichever tool runs next."""
    times = {k: [] for k in variants}
    for _ in range(repeats):
        for k, fn in variants.items():
            time.sleep(pause)
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return times


def run_block(block, rows, cfg):
    variants, scale = {}, {}
    for i, row in enumerate(rows):
        if row["status"] != "ok":
            continue
        try:
            timer, number, factor = _prepare(block, row, cfg)
        except Exception as e:
            row["status"], row["reason"] = "cannot", _err(e)
            continue
        variants[i] = lambda timer=timer, number=number: timer.timeit(number)
        scale[i] = factor / number
    times = _interleaved(variants, block["repeats"], cfg["pause_s"])
    for i, ts in times.items():
        rows[i]["s"] = [t * scale[i] for t in ts]
    _summarize(block, rows)
    _print_block(block, rows)


def _summarize(block, rows):
    """Per row: min/median in the block's unit, ratio to lldiff (*) and, for lldiff's rows,
    to numba's row with the same thread count and fastmath flag."""
    unit, size = block["unit"], block["size"]
    star = next((r for r in rows if r["star"] and r.get("s")), None)
    numba = [r for r in rows if r["tool"] == "numba" and r.get("s")]
    for r in rows:
        if not r.get("s"):
            continue
        r["min"], r["median"] = (_shown(f(r["s"]), unit, size) for f in (min, statistics.median))
        if star:
            r["x_lldiff"] = min(r["s"]) / min(star["s"])
        nb = next((n for n in numba if str(n["threads"]) == str(r["threads"])
                   and n.get("fast") == r.get("fast")), None)
        if r["tool"] == "lldiff" and nb:
            r["x_numba"] = min(r["s"]) / min(nb["s"])


def _label(r):
    star = " *" if r["star"] else ""
    extra = f", extrapolated from {_p10(r['extrapolated_from'])}" \
        if "extrapolated_from" in r else ""
    return f"{r['tool']:10s} {r['how']}{star} [{r['threads']} thr{extra}]"


def _print_block(block, rows):
    timed = [r for r in rows if r.get("s")]
    print(f"\n== {block['title']}: {block['unit']} (min / median of {block['repeats']}), "
          "time / lldiff (*)")
    star = next((r for r in timed if r["star"]), None)
    if star:
        n = {"us": 1e3, "ms": 1e6}.get(block["unit"], block["size"])
        times = {_label(r): r["s"] for r in timed}
        _table(times, n, _label(star), width=max(len(k) for k in times), digits=2)
    else:
        for r in timed:
            print(f"   {_label(r)} {r['min']:.2f} {r['median']:.2f}   (no lldiff row)")
    for r in rows:
        if r.get("err") is not None:
            flag = "  WRONG" if r["status"] == "WRONG" else ""
            note = f", first call {r['first_s']:.3f} s" if "first_s" in r else ""
            xn = f", lldiff / numba {r['x_numba']:.2f}" if "x_numba" in r else ""
            print(f"   err {r['err']:8.1e}{flag}  {r['tool']}: {r['how']}{note}{xn}")
        elif r["status"] != "ok":
            print(f"   {r['status']:>12s}  {r['tool']}: {r['how']}: {r.get('reason', '')}")


# --------------------------------------------------------------------------------------
# the criteria
# --------------------------------------------------------------------------------------

def criteria(blocks, rows):
    per_block, misses = [], []
    for b in blocks:
        star = next((r for r in rows[b["key"]] if r["star"] and r.get("s")), None)
        peers = [r for r in rows[b["key"]] if r["tool"] in PEERS and r.get("s")
                 and r["status"] == "ok"]
        if not star or not peers:
            continue
        worst = min(peers, key=lambda r: r["x_lldiff"])
        entry = {"workload": b["key"], "lldiff": star["how"], "worst_peer": worst["tool"],
                 "worst_how": worst["how"], "ratio": worst["x_lldiff"],
                 "extrapolated": "extrapolated_from" in worst,
                 "below_10x": [(r["tool"], r["how"], r["x_lldiff"]) for r in peers
                               if r["x_lldiff"] < 10]}
        others = [r for r in rows[b["key"]] if r["tool"] == "lldiff" and r.get("s")
                  and not r["star"]]
        if others:   # lldiff's other APIs for the same quantity, against the same peers
            slow = max(others, key=lambda r: min(r["s"]))
            entry["with_" + slow["how"]] = min(worst["s"]) / min(slow["s"])
        per_block.append(entry)
        misses += entry["below_10x"]
    c1 = {"met": not misses and bool(per_block), "per_workload": per_block}

    c2 = {"met": False, "ratios": {}}
    for key in ("bessel_rev_batch", "bessel_fwd_batch"):
        rs = rows.get(key, [])
        for r in rs:
            if r["tool"] == "lldiff" and "x_numba" in r:
                c2["ratios"][f"{key}: {r['how']}, {r['threads']} thr"] = r["x_numba"]
    rev = [v for k, v in c2["ratios"].items() if k.startswith("bessel_rev_batch")]
    c2["met"] = bool(rev) and max(rev) <= 1.1
    return {"c1": c1, "c2": c2}


def _print_criteria(cr):
    c1, c2 = cr["c1"], cr["c2"]
    print("\n== criteria")
    print(f"1. lldiff >= 10x faster per call than every Python peer (JAX, PyTorch, autograd, "
          f"Taichi, Dr.Jit) on each workload it runs: {'MET' if c1['met'] else 'NOT MET'}")
    for e in c1["per_workload"]:
        mark = "ok  " if not e["below_10x"] else "MISS"
        extra = "".join(f"; vs lldiff's {k[5:]}: {v:.1f}x" for k, v in e.items()
                        if k.startswith("with_"))
        print(f"   [{mark}] {e['workload']:20s} slowest margin {e['ratio']:9.1f}x "
              f"({e['worst_peer']}: {e['worst_how']}){extra}")
    print(f"2. lldiff's batched Bessel gradient within 1.1x of numba's hand rule: "
          f"{'MET' if c2['met'] else 'NOT MET'}")
    for k, v in c2["ratios"].items():
        print(f"   {k}: {v:.2f}x numba{'' if k.startswith('bessel_rev') else ' (info)'}")


# --------------------------------------------------------------------------------------
# results: markdown, JSON, chart
# --------------------------------------------------------------------------------------

def _fmt(x, spec=".2f"):
    return "-" if x is None else format(x, spec)


def write_md(path, blocks, rows, cr, info):
    out = ["# lldiff against its peers", "",
           f"`python benchmarks/peers.py{info['mode']}`, written by the script; every ratio "
           "is from this one run.", "",
           f"- machine: {info['cpu']}, {info['cores']} cores ({info['cores_available']} "
           f"available), load {info['load_start']} at start, {info['load_end']} at end",
           f"- date {info['date']}, lldiff git rev {info['lldiff_rev']}, wall "
           f"{info['wall_s']:.0f} s",
           "- versions: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()), "",
           "Reading the tables: time is the min (median) of interleaved repeats, each after "
           f"{info['pause_s']} s idle (so no tool's spinning thread pool is charged to the "
           "next), warm-up excluded; x lldiff = row / lldiff's reference row (*); "
           "x numba = lldiff's row / "
           "numba's row with the same thread count (the hand-written derivative in derivative "
           "workloads); err = max |got - ref| / max |ref| (WRONG above 1e-8, 1e-5 for FD); "
           "cannot = the tool raised (first line of the error).", "",
           "v = 2.0 is a float, so the series uses math.gamma(v + 1) (math.factorial takes "
           "only ints); only z is differentiated. Rows marked 'fixed 30 terms' run a loop of "
           "static length instead of the `while` loop (a different algorithm: the workaround "
           "for tools that cannot differentiate the data-dependent loop).", ""]
    for b in blocks:
        out += [f"## {b['title']} ({b['unit']})", "",
                "| tool | how | threads | min | median | x lldiff | x numba | err | "
                "first call s | note |", "|---|---|---|---:|---:|---:|---:|---:|---:|---|"]
        for r in rows[b["key"]]:
            note = r.get("reason", "")
            if "extrapolated_from" in r:
                note = f"extrapolated from {_p10(r['extrapolated_from'])} (estimated " \
                       f"{r['estimate_s']:.0f} s per call)"
            if r["status"] != "ok":
                note = f"**{r['status']}** {note}".strip()
            out.append("| {} | `{}`{} | {} | {} | {} | {} | {} | {} | {} | {} |".format(
                r["tool"], r["how"].replace("|", "\\|"), " *" if r["star"] else "",
                r["threads"], _fmt(r.get("min")), _fmt(r.get("median")),
                _fmt(r.get("x_lldiff"), ".1f"), _fmt(r.get("x_numba")),
                _fmt(r.get("err"), ".1e"), _fmt(r.get("first_s"), ".3f"),
                note.replace("|", "\\|")))
        out.append("")
    out += ["## Summary: time / lldiff, the fastest correct row of each tool", "",
            "| workload | " + " | ".join(TOOLS[1:]) + " |",
            "|---|" + "---:|" * (len(TOOLS) - 1)]
    for b in blocks:
        cells = []
        for tool in TOOLS[1:]:
            best = _best(rows[b["key"]], tool)
            if best:
                cells.append(f"{best['x_lldiff']:.1f}"
                             + ("~" if "extrapolated_from" in best else ""))
            else:
                st = [r["status"] for r in rows[b["key"]] if r["tool"] == tool]
                cells.append(st[0] if st else "-")
        out.append(f"| {b['title']} | " + " | ".join(cells) + " |")
    out += ["", "(~ extrapolated; a status where no row of that tool ran correctly)", "",
            "## Criteria", ""]
    c1, c2 = cr["c1"], cr["c2"]
    out.append(f"1. lldiff at least 10x faster per call than every Python peer on each "
               f"workload it runs: **{'met' if c1['met'] else 'not met'}**")
    for e in c1["per_workload"]:
        miss = ", ".join(f"{t} {h} {x:.1f}x" for t, h, x in e["below_10x"])
        out.append(f"   - {e['workload']}: smallest margin {e['ratio']:.1f}x "
                   f"({e['worst_peer']}: {e['worst_how']})"
                   + (f"; below 10x: {miss}" if miss else ""))
    out.append(f"2. lldiff's batched Bessel gradient within 1.1x of numba's hand rule: "
               f"**{'met' if c2['met'] else 'not met'}**")
    for k, v in c2["ratios"].items():
        out.append(f"   - {k}: {v:.2f}x" + ("" if k.startswith("bessel_rev") else " (info)"))
    with open(path, "w") as fh:
        fh.write("\n".join(out) + "\n")


def _best(rs, tool):
    ok = [r for r in rs if r["tool"] == tool and r.get("s") and r["status"] == "ok"
          and "x_lldiff" in r]
    return min(ok, key=lambda r: r["x_lldiff"]) if ok else None


def write_png(path, blocks, rows, info):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    tools = TOOLS[1:]
    fig, ax = plt.subplots(figsize=(15, 6))
    width = 0.8 / len(tools)
    for j, tool in enumerate(tools):
        xs, ys, hatch = [], [], []
        for i, b in enumerate(blocks):
            best = _best(rows[b["key"]], tool)
            if best:
                xs.append(i + (j - len(tools) / 2 + 0.5) * width)
                ys.append(best["x_lldiff"])
                hatch.append("//" if "extrapolated_from" in best else "")
        bars = ax.bar(xs, ys, width, label=tool, color=f"C{j}")
        for bar, h in zip(bars, hatch):
            bar.set_hatch(h)
    ax.set_yscale("log")
    ax.axhline(1.0, color="k", lw=1)
    ax.axhline(10.0, color="k", lw=1, ls="--")
    ax.set_xticks(range(len(blocks)))
    ax.set_xticklabels([b["short"] for b in blocks], rotation=30, ha="right")
    ax.set_ylabel("time / lldiff (log; 1 = lldiff, dashed = 10x)")
    ax.set_title(f"lldiff vs peers, fastest correct row per tool (hatched: extrapolated; "
                 f"no bar: cannot / not installed / wrong){info['mode']}\n{info['cpu']}, "
                 f"{info['cores']} cores, {info['date']}, lldiff {info['lldiff_rev']}",
                 fontsize=10)
    ax.set_ylim(top=ax.get_ylim()[1] * 30)
    ax.legend(ncol=len(tools), fontsize=8, loc="upper center")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _json_rows(rs):
    keep = ("tool", "how", "threads", "kind", "star", "fast", "status", "reason", "size", "err",
            "first_s", "s", "min", "median", "x_lldiff", "x_numba", "estimate_s",
            "extrapolated_from")
    return [{k: r[k] for k in keep if k in r} for r in rs]


# --------------------------------------------------------------------------------------

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small sizes, few repeats")
    p.add_argument("--out", help="results folder (default: benchmarks/results for the full "
                   "run, none for --quick)")
    p.add_argument("--tools", default=",".join(t for t, _ in TOOL_ROWS),
                   help="comma-separated subset of: " + ", ".join(t for t, _ in TOOL_ROWS))
    args = p.parse_args(argv)
    if args.quick:
        cfg = dict(points=10 ** 5, l2=(10 ** 3, 10 ** 5), steps=10 ** 4, target_s=0.005,
                   pause_s=0.02, budget_s=0.5,
                   repeats={"bessel": 3, "batch": 3, "l2": 3, "chain": 3})
    else:
        cfg = dict(points=10 ** 6, l2=(10 ** 3, 10 ** 6), steps=10 ** 5, target_s=0.02,
                   pause_s=0.1, budget_s=3.0,
                   repeats={"bessel": 7, "batch": 5, "l2": 7, "chain": 5})
    out_dir = args.out or (None if args.quick else os.path.join(HERE, "results"))
    tools = set(args.tools.split(","))
    warnings.filterwarnings("ignore", category=FutureWarning)   # torch.jit, at import
    warnings.filterwarnings("ignore", message="Casting range_for")   # Taichi
    t_start = time.time()
    info = machine_info()
    info.update(load_start=_loadavg(), date=datetime.date.today().isoformat(),
                mode=" --quick" if args.quick else "", pause_s=cfg["pause_s"])
    blocks = _blocks(cfg)
    print(f"lldiff vs peers{' (--quick)' if args.quick else ''}: {info['cpu']}, "
          f"{info['cores']} cores, load {info['load_start']}, lldiff {info['lldiff_rev']}")
    print("setting up (imports, jit decorators; compiling happens at each row's first call)")
    rows = make_rows(blocks, cfg, tools)
    info["versions"] = {"python": info["python"]}
    for tool, mods in TOOL_MODULES.items():
        for m in mods:
            if tool in tools and _dist_version(m) != "?":
                info["versions"][m] = _dist_version(m)
    for m in ("llvmlite", "numpy", "scipy"):
        info["versions"][m] = _dist_version(m)
    empty = timeit.Timer(lambda: None)
    n = _calibrate(empty, 0.02)
    info["lambda_call_ns"] = min(empty.repeat(5, n)) / n * 1e9
    print(f"   (a call through a Python lambda and timeit's loop: "
          f"{info['lambda_call_ns']:.0f} ns, included in every per-call time)")
    for b in blocks:
        t0 = time.perf_counter()
        run_block(b, rows[b["key"]], cfg)
        print(f"   ({time.perf_counter() - t0:.0f} s)")
    cr = criteria(blocks, rows)
    _print_criteria(cr)
    info.update(load_end=_loadavg(), wall_s=time.time() - t_start)
    print(f"\nmachine: {info['cpu']}, {info['cores']} cores | load {info['load_start']} -> "
          f"{info['load_end']} | " + ", ".join(f"{k} {v}" for k, v in info["versions"].items())
          + f" | {info['wall_s']:.0f} s")
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
        write_md(os.path.join(out_dir, "peers.md"), blocks, rows, cr, info)
        with open(os.path.join(out_dir, "peers.json"), "w") as fh:
            json.dump({"machine": info, "config": cfg, "criteria": cr,
                       "workloads": [dict(b, rows=_json_rows(rows[b["key"]]))
                                     for b in blocks]}, fh, indent=1, default=repr)
        try:
            write_png(os.path.join(out_dir, "peers.png"), blocks, rows, info)
        except ImportError as e:
            print(f"   no chart: {_err(e)}")
        print(f"wrote {out_dir}/peers.md, peers.json"
              + (", peers.png" if os.path.exists(os.path.join(out_dir, "peers.png")) else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
