#!/usr/bin/env python
"""Reverse-mode benchmark: every ratio from ONE run, variants interleaved.

Sections
  1. Bessel gradient d/dz over 10^6 points z = zmax (i + 1/2) / n, zmax = 10, v = 2 (the grid
     of ../shared/notes/enzyme: Enzyme reverse 5.22x the primal there, a hand-written reverse
     sweep with a stack tape 2.21x). lldiff compiles besselj and its vjp; a driver loop
     written in LLVM IR and compiled into the same library calls the primal (or the vjp with
     seed 1) once per point, as the C harness of the Enzyme notes does. Also timed in the
     same run: numba running the hand-written rule 1/2 (J_{v-1} - J_{v+1}) and a hand-written
     reverse sweep with a stack tape (numba, a preallocated array).   goal <= 2.2
  2. The chain x_{k+1} = x_k + h sin(x_k) theta, K = 10^5: one lldiff.grad call (w.r.t.
     theta and x0) against one primal call.   goal <= 1.9 (Enzyme 1.88 in the notes)
  3. One call from Python: @lldiff.jit_grad besselj(2, 0.5) -> (value, gradient) against
     numba calling a hand-written value-and-derivative function, and the primal calls.

Usage
  python benchmarks/reverse.py            # full run (~1 min)
  python benchmarks/reverse.py --quick    # smoke run
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
sys.path.insert(0, HERE)

from forward import _interleaved, _table  # noqa: E402
from primal import _cpu_model, _loadavg, _numba_register_factorial, besselj  # noqa: E402


def chain(x0, theta, h, steps):
    x = x0
    for k in range(steps):
        x = x + h * math.sin(x) * theta
    return x


_DRIVER = """
define double @{name}(i64 %v, i64 %n, double %zmax) {{
entry:
  %y = alloca double
  %g = alloca double
  %nf = sitofp i64 %n to double
  br label %loop
loop:
  %i = phi i64 [0, %entry], [%i1, %loop]
  %acc = phi double [0.0, %entry], [%acc1, %loop]
  %fi = sitofp i64 %i to double
  %t = fadd double %fi, 5.000000e-01
  %u = fmul double %zmax, %t
  %z = fdiv double %u, %nf
  %s = call i32 @"{sym}"(i64 %v, double %z{seed}, ptr %y{gslot})
  %r = load double, ptr {out}
  %acc1 = fadd double %acc, %r
  %i1 = add i64 %i, 1
  %more = icmp slt i64 %i1, %n
  br i1 %more, label %loop, label %done
done:
  ret double %acc1
}}
"""


def _bessel_drivers(opt):
    """ctypes functions (v, n, zmax) -> sum of J_v(z_i) / sum of dJ_v/dz(z_i), native loops."""
    import lldiff
    from lldiff import codegen
    from lldiff.ir import F64, I64
    from lldiff.runtime import get_engine
    d = lldiff.jit(besselj, opt=opt)
    types = (I64, F64)
    primal = d._ir(types)
    grad = d._derived_ir(types, "vjp", (False, True))
    out = {}
    for key, spec, seed, gslot, res in (
            ("primal", primal, "", "", "%y"),
            ("vjp", grad, ", double 1.0", ", ptr %g", "%g")):
        text = codegen.emit(spec.module, [spec.symbol], name=spec.symbol)
        text += _DRIVER.format(name=f"drive_{key}", sym=spec.symbol, seed=seed, gslot=gslot,
                               out=res)
        lib = get_engine().compile(text, opt, [f"drive_{key}"])
        fn = ctypes.CFUNCTYPE(ctypes.c_double, ctypes.c_int64, ctypes.c_int64,
                              ctypes.c_double)(lib.addresses[f"drive_{key}"])
        out[key] = (fn, lib)
    return out


def _numba_variants():
    import numba
    import numpy as np
    _numba_register_factorial()  # numba lacks math.factorial; primal.py registers a loop
    nb_besselj = numba.njit(besselj)
    fact = numba.njit(lambda v: math.factorial(v))

    @numba.njit(cache=False)
    def nb_hand_rule(v, n, zmax):
        acc = 0.0
        for i in range(n):
            z = zmax * (i + 0.5) / n
            acc += 0.5 * (nb_besselj(v - 1, z) - nb_besselj(v + 1, z))
        return acc

    @numba.njit(cache=False)
    def nb_hand_reverse_one(v, z, tape):
        # forward: record s_k; reverse: adjoints of s and of z (q = (z/2)^2)
        k = 0
        s = (z / 2) ** v / fact(v)
        out = s
        n = 0
        while abs(s) > 2.220446049250313e-16:
            tape[n] = s
            n += 1
            k += 1
            s *= -1 / k / (k + v) * (z / 2) ** 2
            out += s
        q = (z / 2) ** 2
        dq = 2 * (z / 2) * 0.5
        zbar = 0.0
        sbar = 1.0  # d out / d s_n
        for j in range(n - 1, -1, -1):
            kk = j + 1
            c = -1 / kk / (kk + v)
            # s_{j+1} = s_j * c * q ; out accumulates every s
            zbar += sbar * tape[j] * c * dq
            sbar = sbar * c * q + 1.0
        s0bar = sbar
        if v == 0:
            return out, zbar
        return out, zbar + s0bar * v * (z / 2) ** (v - 1) * 0.5 / fact(v)

    @numba.njit(cache=False)
    def nb_hand_reverse(v, n, zmax):
        tape = np.empty(512)
        acc = 0.0
        for i in range(n):
            z = zmax * (i + 0.5) / n
            acc += nb_hand_reverse_one(v, z, tape)[1]
        return acc

    @numba.njit(cache=False)
    def nb_value_and_derivative(v, z):
        return nb_besselj(v, z), 0.5 * (nb_besselj(v - 1, z) - nb_besselj(v + 1, z))

    return nb_besselj, nb_hand_rule, nb_hand_reverse, nb_value_and_derivative


def main(argv=None):
    import lldiff
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    n = 10 ** 5 if args.quick else 10 ** 6
    repeats = 3 if args.quick else 11
    print(f"machine: {_cpu_model()}, load {_loadavg()}; lldiff {lldiff.__version__}")

    # 1. Bessel
    v, zmax = 2, 10.0
    drivers = _bessel_drivers(opt=2)
    prim, rev = drivers["primal"][0], drivers["vjp"][0]
    nb_besselj, nb_rule, nb_rev, nb_vd = _numba_variants()
    ref_rule, ref_rev, ref_vjp = nb_rule(v, n, zmax), nb_rev(v, n, zmax), rev(v, n, zmax)
    variants = {
        "lldiff primal": lambda: prim(v, n, zmax),
        "lldiff reverse (vjp)": lambda: rev(v, n, zmax),
        "numba hand rule": lambda: nb_rule(v, n, zmax),
        "numba hand reverse, tape": lambda: nb_rev(v, n, zmax),
    }
    times = _interleaved(variants, repeats)
    print(f"\n1. Bessel J_2 gradient d/dz over {n} points in (0, {zmax:g}), ns/point "
          f"(min / median of {repeats}), ratio to lldiff's primal (min)")
    _table(times, n, "lldiff primal", "lldiff reverse (vjp)", 2.2)
    print(f"   (sums of d/dz: lldiff {ref_vjp:.12f}, hand rule {ref_rule:.12f}, "
          f"hand reverse {ref_rev:.12f})")

    # 2. Chain
    K, h, x0, theta = (10 ** 4 if args.quick else 10 ** 5), 1e-4, 0.3, 0.8
    f = lldiff.jit(chain)
    g = lldiff.grad(f, argnums=(0, 1))
    f(x0, theta, h, K), g(x0, theta, h, K)
    reps = 5 if args.quick else 21
    times = _interleaved({"primal": lambda: f(x0, theta, h, K),
                          "lldiff.grad (x0, theta)": lambda: g(x0, theta, h, K)}, reps)
    print(f"\n2. Chain x_(k+1) = x_k + h sin(x_k) theta, K = {K}: ns/step "
          f"(min / median of {reps}), ratio to the primal")
    _table(times, K, "primal", "lldiff.grad (x0, theta)", 1.9)

    # 3. Calls from Python
    jg = lldiff.jit_grad(besselj)
    bj = lldiff.jit(besselj)
    jg(2, 0.5), bj(2, 0.5), nb_vd(2, 0.5), nb_besselj(2, 0.5)
    k = 20000
    res = {}
    for name, fn in (("lldiff primal besselj(2, 0.5)", lambda: bj(2, 0.5)),
                     ("lldiff @jit_grad -> (value, d/dz)", lambda: jg(2, 0.5)),
                     ("numba primal", lambda: nb_besselj(2, 0.5)),
                     ("numba hand (value, derivative)", lambda: nb_vd(2, 0.5))):
        res[name] = min(timeit.repeat(fn, number=k, repeat=7)) / k
    print("\n3. One call from Python, ns (min of 7 x 20000)")
    for name, t in res.items():
        print(f"   {name:36s} {t * 1e9:7.0f}")
    print(f"   @jit_grad / numba hand (value, derivative): "
          f"{res['lldiff @jit_grad -> (value, d/dz)'] / res['numba hand (value, derivative)']:.2f}")
    print(f"   (values: {jg(2, 0.5)} vs {nb_vd(2, 0.5)})")


if __name__ == "__main__":
    main()
