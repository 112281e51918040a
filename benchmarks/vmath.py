#!/usr/bin/env python
"""The vector pow of codegen/vmath.py, measured: its own error, libm's, how many lanes it
proves, and its speed against libm's scalar pow -- from ONE run.

On N random (x, y) pairs of each regime it reports
  - own err: this code's error, max |hi + lo - x^y| in ulp of the result, against mpmath at
    200 bits (on a subsample), and own/bound: the largest ratio of that error to the part of
    vmath.py's margin meant for it (OWN_MARGIN: 0.001 + 4e-6 |y ln x|; must stay below 1);
  - libm err: max |pow(x, y) - x^y| in ulp, same subsample (glibc documents 0.54);
  - libm off: over all N, the largest distance in ulp from a rounding midpoint at which
    libm's pow is not the nearest double, and off/bound: its largest ratio to glibc's part of
    the margin (LIBM_MARGIN: 0.0115 + 1.5 2^-15 |y ln x|, from glibc's error analysis; must
    stay below 1);
  - the lanes it keeps (proved equal to libm) and the lanes that call libm;
  - mismatches against libm's pow, over all N (must be 0);
  - ns per element: the vector pow (W = 8 lanes, a plain loop over arrays) vs numba's loop
    calling libm's pow.

Usage
  python benchmarks/vmath.py            # full run (~1 min)
  python benchmarks/vmath.py --quick
"""

import argparse
import ctypes
import math
import os
import sys
import timeit

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

W = 8


def _compile():
    """ctypes functions run(x, y, out, n) (the vector pow over arrays, n a multiple of W)
    and parts(x, y, hi, lo, ok, n) (its hi + lo before scaling, and the proved-lane flags)."""
    from llvmlite import binding as llvm
    from llvmlite import ir as L

    from lldiff.codegen import vmath
    from lldiff.runtime import get_engine
    get_engine()  # (initializes LLVM's native target)
    lm = L.Module("vmath_bench")
    lm.triple = llvm.get_process_triple()
    vpow = vmath.build_vpow(lm, "vpow", W)
    d, i64 = L.DoubleType(), L.IntType(64)
    vt = L.VectorType(d, W)

    def loop(name, nptr, body):
        fn = L.Function(lm, L.FunctionType(L.VoidType(), [d.as_pointer()] * nptr + [i64]),
                        name)
        *ptrs, n = fn.args
        entry, lp, done = (fn.append_basic_block(s) for s in ("e", "l", "d"))
        bd = L.IRBuilder(entry)
        bd.branch(lp)
        bd.position_at_end(lp)
        i = bd.phi(i64)
        i.add_incoming(L.Constant(i64, 0), entry)

        def at(p):
            return bd.bitcast(bd.gep(p, [i]), vt.as_pointer())

        body(bd, ptrs, at)
        i2 = bd.add(i, L.Constant(i64, W))
        i.add_incoming(i2, lp)
        bd.cbranch(bd.icmp_signed("<", i2, n), lp, done)
        bd.position_at_end(done)
        bd.ret_void()

    def run_body(bd, p, at):
        x, y = bd.load(at(p[0]), align=8), bd.load(at(p[1]), align=8)
        on = L.Constant(L.VectorType(L.IntType(1), W), [1] * W)
        bd.store(bd.call(vpow, [x, y, on]), at(p[2]), align=8)

    def parts_body(bd, p, at):
        x, y = bd.load(at(p[0]), align=8), bd.load(at(p[1]), align=8)
        _, ok, hi, lo = vmath._pow_lanes(bd, W, x, y)
        bd.store(hi, at(p[2]), align=8)
        bd.store(lo, at(p[3]), align=8)
        bd.store(bd.uitofp(ok, vt), at(p[4]), align=8)

    loop("run", 3, run_body)
    loop("parts", 5, parts_body)
    lib = get_engine().compile(str(lm), 3, ["run", "parts"])
    P = ctypes.POINTER(ctypes.c_double)
    run = ctypes.CFUNCTYPE(None, P, P, P, ctypes.c_int64)(lib.addresses["run"])
    parts = ctypes.CFUNCTYPE(None, P, P, P, P, P, ctypes.c_int64)(lib.addresses["parts"])
    return lib, run, parts


def main(argv=None):
    import mpmath
    import numba
    import numpy as np

    from lldiff.codegen import vmath
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    n = 1 << (16 if args.quick else 20)
    sub = 500 if args.quick else 4000
    lib, run, parts = _compile()
    P = ctypes.POINTER(ctypes.c_double)

    def ptr(a):
        return a.ctypes.data_as(P)

    libm = ctypes.CDLL(None).pow
    libm.argtypes, libm.restype = [ctypes.c_double, ctypes.c_double], ctypes.c_double

    @numba.njit
    def scalar_pow(x, y, out):
        for i in range(len(x)):
            out[i] = x[i] ** y[i]

    mpmath.mp.prec = 200
    rng = np.random.default_rng(0)
    regimes = {
        "x in (0, 4), y in (-6, 6)": (rng.uniform(0, 4, n), rng.uniform(-6, 6, n)),
        "x = e^(+-700), |y| < 1": (np.exp(rng.uniform(-700, 700, n)), rng.uniform(-1, 1, n)),
        "x = 1 +- 1e-3, |y| < 3e5": (1 + rng.uniform(-1e-3, 1e-3, n),
                                     rng.uniform(-3e5, 3e5, n)),
        "Bessel: (z/2)^2.0, z in (0, 20)": (rng.uniform(0, 10, n), np.full(n, 2.0)),
    }
    (la, lb), (oa, ob) = vmath.LIBM_MARGIN, vmath.OWN_MARGIN
    print(f"vector pow (codegen/vmath.py), W = {W}, margin = {la + oa} + "
          f"{lb + ob:.3g} |y ln x| ulp, {n} pairs per regime, "
          f"errors on {sub}")
    print(f"{'regime':34} {'own err':>9} {'own/bound':>9} {'libm err':>9} {'libm off':>9} "
          f"{'off/bound':>9} {'kept':>7} {'mismatch':>9} {'vector':>8} {'libm':>8}  ns/elem")
    mask = (1 << 52) - 1
    for name, (x, y) in regimes.items():
        out = np.empty(n)
        run(ptr(x), ptr(y), ptr(out), n)
        ref = np.empty(n)
        scalar_pow(x, y, ref)
        mismatch = int(np.sum(out.view(np.int64) != ref.view(np.int64)))
        hi, lo, ok = np.empty(n), np.empty(n), np.empty(n)
        parts(ptr(x), ptr(y), ptr(hi), ptr(lo), ptr(ok), n)
        with np.errstate(all="ignore"):
            e = np.abs(y * np.log(x))
            normal = (x > 0) & (e < 707) & np.isfinite(ref) & (np.abs(ref) >= 2.0 ** -1022)
        # libm against the nearest double, over all N: hi (unscaled) is the nearest where
        # |lo| < ulp / 2, and has libm's significand exactly when libm returns the nearest
        ulp = np.abs(hi) * 2.0 ** -52
        ulp = np.exp2(np.floor(np.log2(ulp, where=normal, out=np.ones(n))))
        off_mid = 0.5 - np.abs(lo) / ulp
        off = normal & ((ref.view(np.int64) & mask) != (hi.view(np.int64) & mask))
        libm_off = float(off_mid[off].max()) if off.any() else 0.0
        off_ratio = float((off_mid[off] / (la + lb * e[off])).max()) \
            if off.any() else 0.0
        own = own_ratio = lib_err = 0.0
        for k in range(sub):
            true = mpmath.power(mpmath.mpf(x[k]), mpmath.mpf(y[k]))
            got = libm(float(x[k]), float(y[k]))
            if not normal[k]:
                continue
            lib_err = max(lib_err, abs(float((mpmath.mpf(got) - true)
                                             / mpmath.mpf(math.ulp(got)))))
            scale = mpmath.mpf(2) ** (math.frexp(got)[1] - math.frexp(hi[k])[1])
            err = abs(float((mpmath.mpf(hi[k]) + mpmath.mpf(lo[k]) - true / scale)
                            / mpmath.mpf(math.ulp(hi[k]))))
            own = max(own, err)
            own_ratio = max(own_ratio, err / (oa + ob * e[k]))
        t_vec = min(timeit.repeat(lambda: run(ptr(x), ptr(y), ptr(out), n), number=3,
                                  repeat=5)) / 3 / n * 1e9
        t_lib = min(timeit.repeat(lambda: scalar_pow(x, y, ref), number=3,
                                  repeat=5)) / 3 / n * 1e9
        print(f"{name:34} {own:9.2e} {own_ratio:9.3f} {lib_err:9.4f} {libm_off:9.5f} "
              f"{off_ratio:9.3f} {ok.mean():7.1%} {mismatch:9d} {t_vec:8.2f} {t_lib:8.2f}")
    del lib


if __name__ == "__main__":
    main()
