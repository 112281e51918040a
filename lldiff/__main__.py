"""Command line: `python -m lldiff demo` and `python -m lldiff dump FILE.py:FUNC ...`.

`dump` prints a compilation stage of a function in a file:
--stage ir|jvp|vjp|llvm|llvm-opt|asm|ptx|spmd and --sig float,int,... (the argument types of
the specialization); --arch sm_XX for ptx (the GPU map kernel). The jvp and vjp stages
differentiate every float argument; spmd is the SIMD-lanes form lldiff.vectorize runs, every
argument varying between lanes.
"""

import argparse
import importlib.util
import math
import os
import sys
import time

_SIG = {"float": "f64", "f64": "f64", "int": "i64", "i64": "i64", "bool": "i1", "i1": "i1"}


def poor_besselj(v, z):
    """J_v(z) by its power series, as in the seed notes (Julia's poor_besselj)."""
    k = 0
    s = (z / 2) ** v / math.factorial(v)
    out = s
    while abs(s) > 2.220446049250313e-16:
        k += 1
        s *= -1 / k / (k + v) * (z / 2) ** 2
        out += s
    return out


def demo(out=sys.stdout):
    import lldiff
    t0 = time.perf_counter()
    besselj = lldiff.jit(poor_besselj)
    value = besselj(2, 0.5)
    compile_s = time.perf_counter() - t0
    try:
        from scipy.special import jv
    except ImportError:
        jv = None
    print("lldiff demo: the seed's poor_besselj compiled to native code", file=out)
    print(f"first call (compile + run): {compile_s * 1e3:.1f} ms", file=out)
    head = f"{'v':>3} {'z':>6} {'lldiff J_v(z)':>24}"
    print(head + (f" {'scipy.special.jv':>24} {'rel. diff':>10}" if jv else ""), file=out)
    for v in (0, 1, 2, 5):
        for z in (0.5, 2.0, 10.0):
            y = besselj(v, z)
            line = f"{v:>3} {z:>6} {y:>24.17g}"
            if jv is not None:
                ref = float(jv(v, z))
                line += f" {ref:>24.17g} {abs(y - ref) / abs(ref):>10.1e}"
            print(line, file=out)
    import timeit
    n = 20000
    native = min(timeit.repeat(lambda: besselj(2, 0.5), number=n, repeat=5)) / n
    python = min(timeit.repeat(lambda: poor_besselj(2, 0.5), number=n // 10, repeat=3)) / (n // 10)
    print(f"one call J_2(0.5): native {native * 1e9:.0f} ns, plain Python "
          f"{python * 1e9:.0f} ns ({python / native:.0f}x faster)", file=out)
    print("\nforward mode: d/dz J_v(z) = lldiff.jvp(besselj, (v, z), (None, 1.0))[1]", file=out)
    try:
        from scipy.special import jvp as jv_prime
    except ImportError:
        jv_prime = None
    h = 1e-6
    head = f"{'v':>3} {'z':>6} {'lldiff jvp':>24} {'central FD (h=1e-6)':>24}"
    print(head + (f" {'scipy.special.jvp':>24} {'abs. diff':>10}" if jv_prime else ""), file=out)
    for v in (0, 1, 2, 5):
        for z in (0.5, 2.0, 10.0):
            _, dy = lldiff.jvp(besselj, (v, z), (None, 1.0))
            fd = (besselj(v, z + h) - besselj(v, z - h)) / (2 * h)
            line = f"{v:>3} {z:>6} {dy:>24.17g} {fd:>24.17g}"
            if jv_prime is not None:
                ref = float(jv_prime(v, z, 1))
                line += f" {ref:>24.17g} {abs(dy - ref):>10.1e}"
            print(line, file=out)
    print("\nreverse mode: value and d/dz J_v(z) in one native call, "
          "@lldiff.jit_grad besselj(v, z)", file=out)
    grad_besselj = lldiff.jit_grad(poor_besselj)
    head = f"{'v':>3} {'z':>6} {'value':>24} {'gradient (reverse)':>24}"
    print(head + (f" {'scipy.special.jvp':>24} {'abs. diff':>10}" if jv_prime else ""), file=out)
    for v in (0, 1, 2, 5):
        for z in (0.5, 2.0, 10.0):
            y, g = grad_besselj(v, z)
            line = f"{v:>3} {z:>6} {y:>24.17g} {g:>24.17g}"
            if jv_prime is not None:
                ref = float(jv_prime(v, z, 1))
                line += f" {ref:>24.17g} {abs(g - ref):>10.1e}"
            print(line, file=out)
    one = min(timeit.repeat(lambda: grad_besselj(2, 0.5), number=n, repeat=5)) / n
    print(f"one call grad_besselj(2, 0.5) -> (value, gradient): {one * 1e9:.0f} ns; "
          f"lldiff.grad(besselj, argnums=1)(2, 0.5) = "
          f"{lldiff.grad(besselj, argnums=1)(2, 0.5)!r}", file=out)
    print("\nIR of the specialization (v: int, z: float):", file=out)
    print(besselj.inspect("ir", 2, 0.5), file=out)
    print("forward-mode IR (besselj.inspect('jvp', 2, 0.5)): tangents only for s and out",
          file=out)
    print(besselj.inspect("jvp", 2, 0.5), file=out)
    print("reverse-mode IR (besselj.inspect('vjp', 2, 0.5)): the tape holds s, one f64 per "
          "iteration; the iteration count is an extra loop-carried i64", file=out)
    print(besselj.inspect("vjp", 2, 0.5), file=out)
    return value


def dump(target, sig, stage, opt, arch="sm_90"):
    import lldiff
    from lldiff import api, ir
    path, _, name = target.rpartition(":")
    if not path or not name:
        raise SystemExit("dump: expected FILE.py:FUNC")
    spec = importlib.util.spec_from_file_location(
        os.path.splitext(os.path.basename(path))[0], path)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
    spec.loader.exec_module(module)
    fn = getattr(module, name)
    d = fn if isinstance(fn, api.Dispatcher) else lldiff.jit(fn, opt=opt)
    if opt is not None:
        d.opt = opt
    types = []
    for t in (sig.split(",") if sig else []):
        t = t.strip()
        if t not in _SIG:
            raise SystemExit(f"dump: unknown type {t!r} in --sig (use float, int, bool)")
        types.append({"f64": ir.F64, "i64": ir.I64, "i1": ir.I1}[_SIG[t]])
    print(d.inspect_types(stage, types, arch), end="")


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m lldiff")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("demo", help="compile and run the seed's Bessel series")
    d = sub.add_parser("dump", help="print a compilation stage of FILE.py:FUNC")
    d.add_argument("target", help="path/to/file.py:function")
    d.add_argument("--sig", default="", help="argument types, e.g. float,int")
    d.add_argument("--stage", default="ir",
                   choices=["ir", "jvp", "vjp", "llvm", "llvm-opt", "asm", "ptx", "spmd"])
    d.add_argument("--arch", default="sm_90", help="GPU architecture for --stage ptx")
    d.add_argument("--opt", type=int, default=None, help="LLVM optimization level 0-3")
    args = p.parse_args(argv)
    if args.cmd == "demo":
        demo()
    else:
        dump(args.target, args.sig, args.stage, args.opt, args.arch)


if __name__ == "__main__":
    main()
