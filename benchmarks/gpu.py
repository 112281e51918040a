#!/usr/bin/env python
"""GPU maps: Bessel derivative throughput on the GPU against the CPU batch map and JAX, from
ONE run.

10^6 points z uniform in (0, 10), v = 2, points per second (best of repeats):
  lldiff GPU, device arrays   vectorize(grad / jacfwd, target="cuda") on a DeviceArray (the
                              kernel, its launch and the failure check; no host copies)
  lldiff GPU, numpy in/out    the same from numpy arrays (adds both PCIe copies)
  (and, printed apart, the time of a call on one point: the launch path's fixed cost)
  lldiff CPU, all threads     vectorize(grad / jacfwd) (the CPU batch map)
  JAX GPU (if installed with CUDA): jit(vmap(jvp(f))) with lax.while_loop, x64
Every result is checked against scipy.special.jvp (1e-10 relative to the scale), and the GPU's
against the CPU map's (1e-13). Without a CUDA driver and GPU it says so and exits 0.

Usage
  python benchmarks/gpu.py            # 10^6 points
  python benchmarks/gpu.py --n 10000000
"""

import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)

from primal import besselj, machine_info  # noqa: E402

EPS = 2.220446049250313e-16


def best(fn, repeats):
    ts, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        ts.append(time.perf_counter() - t0)
    return min(ts), out


def jax_rows(z, repeats):
    """(label, seconds, result) for JAX on a GPU, or a reason it is absent."""
    try:
        import jax
        jax.config.update("jax_enable_x64", True)
        import jax.numpy as jnp
        from jax import lax
        from jax.scipy.special import gamma
        gpus = jax.devices("gpu")
    except Exception as e:  # not installed, or no CUDA backend
        return f"JAX on the GPU unavailable: {type(e).__name__}: {e}"

    def f(v, z):
        def body(c):
            k, s, out = c
            k = k + 1
            s = s * (-1 / k / (k + v) * (z / 2) ** 2)
            return k, s, out + s
        s = (z / 2) ** v / gamma(v + 1)
        return lax.while_loop(lambda c: jnp.abs(c[1]) > EPS, body, (0, s, s))[2]

    fwd = jax.jit(jax.vmap(lambda z: jax.jvp(lambda t: f(2.0, t), (z,), (1.0,))[1]))
    zd = jax.device_put(jnp.asarray(z), gpus[0])
    fwd(zd).block_until_ready()
    t, out = best(lambda: fwd(zd).block_until_ready(), repeats)
    return [("JAX GPU jit(vmap(jvp(f))), device arrays", "fwd", t, out)]


def main(argv=None):
    import numpy as np
    from scipy.special import jvp

    import lldiff
    from lldiff.runtime import cudadrv
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=10 ** 6)
    p.add_argument("--repeats", type=int, default=10)
    args = p.parse_args(argv)
    info = machine_info()
    if not cudadrv.available():
        print(json.dumps(info))
        print("no CUDA driver or GPU on this machine: nothing to measure")
        return 0
    dev = cudadrv.device(0)
    info.update(gpu=dev.name, arch=dev.arch, multiprocessors=dev.multiprocessors)
    z = np.random.default_rng(0).uniform(0.0, 10.0, args.n)
    want = jvp(2, z)
    scale = np.abs(want).max()
    maps = {"rev": lldiff.grad(besselj, 1), "fwd": lldiff.jacfwd(besselj, 1)}
    zd = cudadrv.to_device(z, dev)
    rows = []
    for kind, g in maps.items():
        on_gpu = lldiff.vectorize(g, target="cuda")
        on_cpu = lldiff.vectorize(g)
        t0 = time.perf_counter()
        on_gpu(2, zd)
        compile_s = time.perf_counter() - t0
        on_cpu(2, z)
        t, out = best(lambda: on_gpu(2, zd), args.repeats)
        rows.append((f"lldiff GPU {kind}, device arrays", kind, t, out.copy_to_host()))
        t, out = best(lambda: on_gpu(2, z), args.repeats)
        rows.append((f"lldiff GPU {kind}, numpy in/out", kind, t, out))
        t, out = best(lambda: on_cpu(2, z), max(3, args.repeats // 3))
        rows.append((f"lldiff CPU {kind}, {os.cpu_count()} threads", kind, t, out))
        one = cudadrv.to_device(z[:1], dev)
        t1, _ = best(lambda: on_gpu(2, one), 100)
        print(f"# {kind}: first GPU call (PTX + module load) {compile_s:.2f} s; a call on one "
              f"point (device array) {t1 * 1e6:.0f} us")
    cpu = {kind: out for label, kind, _, out in rows if "CPU" in label}
    jx = jax_rows(z, args.repeats)
    if isinstance(jx, str):
        print("#", jx)
    else:
        rows += jx
    print(json.dumps(info))
    print(f"{'':48} {'points/s':>12} {'ns/point':>9} {'vs CPU map':>10}  check")
    cpu_t = {kind: t for label, kind, t, _ in rows if "CPU" in label}
    for label, kind, t, out in rows:
        out = np.asarray(out)
        err = np.max(np.abs(out - want)) / scale
        vs_cpu = np.max(np.abs(out - cpu[kind]) / np.maximum(np.abs(cpu[kind]), 1e-300))
        ok = err < 1e-10 and ("lldiff GPU" not in label or
                              np.allclose(out, cpu[kind], rtol=1e-13, atol=1e-13 * scale))
        print(f"{label:48} {args.n / t:12.3e} {t / args.n * 1e9:9.2f} "
              f"{cpu_t[kind] / t:9.1f}x  {'ok' if ok else 'WRONG'} (vs scipy {err:.1e}, "
              f"vs CPU map {vs_cpu:.1e} rel)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
