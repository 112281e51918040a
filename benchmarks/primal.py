#!/usr/bin/env python
"""Primal (non-derivative) benchmark: lldiff vs numba, all ratios from ONE run.

Sections
  1. bessel_sum(v=2, n=10**6): a scalar driver that loops over n points and calls
     the jitted besselj for each; ns per point for lldiff (opt=3 and opt=2) and
     numba @njit, interleaved repeats, min and median.       goal: lldiff/numba <= 1.05
  2. Scalar calls from Python through the dispatcher: besselj(2, 0.5) and
     add1(1.5, 2.0); ns per call, plain Python for reference. goal: lldiff/numba <= 0.5
  3. First-call compile time (decorate + first call) of besselj, each side in a
     FRESH subprocess (import done before the timer), plus a second, different
     function compiled in the same process.                  goal: lldiff/numba <= 0.25
  4. `import lldiff` / `import numba` time in a fresh process (best of 5) and whether
     `import lldiff` pulled in llvmlite.binding (or numba).

Usage
  python benchmarks/primal.py                 # full run
  python benchmarks/primal.py --quick         # smoke test, a few seconds
  python benchmarks/primal.py --json out.json # also write the results as JSON

Notes
  * numba does not support math.factorial in nopython mode, so this script registers a
    small integer-loop implementation with numba.extending.overload(math.factorial);
    both sides then compile exactly the same Python source.  For v=2 it is called once
    per point and costs a couple of multiplies.
  * numba is used with its defaults (njit: fastmath off, error_model='python', opt 3)
    and never with cache=True.
  * Only the standard library is imported at module level, so the fresh subprocesses of
    sections 3 and 4 can import this file for the plain function definitions without
    pulling in numba or lldiff before their timers start.
"""

import argparse
import builtins
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
import timeit
import traceback
import types

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    # Benchmark the lldiff of this checkout (also works when lldiff is not installed).
    sys.path.insert(0, ROOT)


# --------------------------------------------------------------------------------------
# The benchmarked functions (plain Python; jitted copies are made with separate globals)
# --------------------------------------------------------------------------------------

def besselj(v, z):
    k = 0
    s = (z / 2) ** v / math.factorial(v)
    out = s
    while abs(s) > 2.220446049250313e-16:
        k += 1
        s *= -1 / k / (k + v) * (z / 2) ** 2
        out += s
    return out


def bessel_sum(v, n):
    acc = 0.0
    for i in range(n):
        z = 10.0 * (i + 0.5) / n
        acc += besselj(v, z)
    return acc


def besselj_alt(v, z):
    # A second, different function of the same size, for the "second compile in the
    # same process" measurement (different source, so no cache of any kind can apply).
    k = 0
    h = 0.5 * z
    term = h ** v / math.factorial(v)
    total = term
    while abs(term) > 1e-17 * abs(total):
        k += 1
        term *= -(h * h) / (k * (k + v))
        total += term
    return total


def add1(x, y):
    return x * y + 1.0


GOALS = {"bessel_sum": 1.05, "call": 0.5, "compile": 0.25}


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------

def _numba_register_factorial():
    """Give numba an implementation of math.factorial for ints (once per process)."""
    import numba
    from numba import types as nbtypes
    from numba.extending import overload

    if getattr(numba, "_lldiff_bench_factorial", False):
        return

    @overload(math.factorial)
    def _ovl_factorial(n):
        if isinstance(n, nbtypes.Integer):
            def impl(n):
                r = 1
                for i in range(2, n + 1):
                    r *= i
                return r
            return impl
        return None

    numba._lldiff_bench_factorial = True


def _copy_function(fn, g):
    """A copy of fn whose __globals__ is the dict g (code object shared)."""
    f = types.FunctionType(fn.__code__, g, fn.__name__, fn.__defaults__, fn.__closure__)
    f.__qualname__ = fn.__qualname__
    f.__doc__ = fn.__doc__
    f.__kwdefaults__ = fn.__kwdefaults__
    return f


def make_namespace(jit, tag):
    """Globals dict holding jitted besselj/bessel_sum/add1 (bessel_sum -> jitted besselj)."""
    g = {
        "__builtins__": builtins,
        "__name__": __name__,          # keeps inspect.getsource working on the copies
        "__file__": os.path.abspath(__file__),
        "math": math,
        "_bench_tag": tag,
    }
    for fn in (besselj, bessel_sum, add1):
        g[fn.__name__] = jit(_copy_function(fn, g))
    return g


def _err(e):
    return "%s: %s" % (type(e).__name__, str(e).strip().splitlines()[0] if str(e).strip() else "")


def _print_exc(section, e):
    print("  !! %s failed: %s" % (section, _err(e)))
    tb = traceback.format_exc().rstrip().splitlines()
    for line in tb[-6:]:
        print("     " + line)


def _stats(xs):
    return {"min": min(xs), "median": statistics.median(xs), "n": len(xs)}


def _ratio(a, b):
    try:
        return a / b
    except (TypeError, ZeroDivisionError):
        return None


def _fmt(x, spec="%.1f"):
    return "-" if x is None else spec % x


def _verdict(r, goal):
    if r is None:
        return ""
    return "[ok]" if r <= goal else "[MISS]"


def _loadavg():
    try:
        with open("/proc/loadavg") as fh:
            return " ".join(fh.read().split()[:3])
    except OSError:
        try:
            return " ".join("%.2f" % x for x in os.getloadavg())
        except (OSError, AttributeError):
            return "?"


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _dist_version(name):
    try:
        from importlib.metadata import version
        return version(name)
    except Exception:
        return "?"


def _git_rev():
    try:
        rev = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--", "lldiff",
                                "passes", "runtime"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return (rev or "no-commit") + ("+dirty" if dirty else "")
    except Exception:
        return "?"


def machine_info():
    try:
        ncpu_aff = len(os.sched_getaffinity(0))
    except AttributeError:
        ncpu_aff = None
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "cores_available": ncpu_aff,
        "python": platform.python_version(),
        "llvmlite": _dist_version("llvmlite"),
        "numba": _dist_version("numba"),
        "lldiff_rev": _git_rev(),
    }


def _import_lldiff():
    import lldiff
    if not hasattr(lldiff, "jit"):
        raise ImportError("lldiff has no attribute 'jit' (package not ready? imported from %r)"
                          % (getattr(lldiff, "__path__", None),))
    return lldiff


# --------------------------------------------------------------------------------------
# section 1: bessel_sum over n points
# --------------------------------------------------------------------------------------

def section_bessel_sum(cfg, res):
    n, v, repeats = cfg["n"], 2, cfg["repeats"]
    print("\n== 1. bessel_sum(v=%d, n=%d): ns/point, min / median of %d interleaved repeats"
          % (v, n, repeats))
    out = res.setdefault("bessel_sum", {"n": n, "v": v, "repeats": repeats, "errors": {}})
    variants = {}   # name -> namespace

    try:
        import numba
        _numba_register_factorial()
        variants["numba"] = make_namespace(numba.njit, "numba")
    except Exception as e:
        out["errors"]["numba"] = _err(e)
        _print_exc("numba setup", e)

    try:
        lldiff = _import_lldiff()
        for opt in (3, 2):
            name = "lldiff_opt%d" % opt
            try:
                variants[name] = make_namespace(
                    lambda f, opt=opt: lldiff.jit(f, opt=opt), name)
            except Exception as e:
                out["errors"][name] = _err(e)
                _print_exc(name + " setup", e)
    except Exception as e:
        out["errors"]["lldiff"] = _err(e)
        _print_exc("import lldiff", e)

    # warm up (compile) and check results agree
    values, warm_s = {}, {}
    for name in list(variants):
        try:
            t0 = time.perf_counter()
            values[name] = variants[name]["bessel_sum"](v, n)
            warm_s[name] = time.perf_counter() - t0
        except Exception as e:
            out["errors"][name] = _err(e)
            _print_exc(name + " first call", e)
            del variants[name]
    out["values"] = values
    out["first_call_s"] = warm_s
    # plain-Python reference on a small n, to check the compiled results
    try:
        n_ref = min(n, 2000)
        ref = bessel_sum(v, n_ref)
        checks = {}
        for name, g in variants.items():
            got = g["bessel_sum"](v, n_ref)
            checks[name] = abs(got - ref) / max(abs(ref), 1e-300)
        out["rel_err_vs_python"] = {"n": n_ref, "python": ref, **checks}
    except Exception as e:
        out["errors"]["check"] = _err(e)
        _print_exc("result check", e)

    if not variants:
        print("  nothing to time")
        return

    # interleaved timing, rotating the order each repeat to spread load bias
    names = list(variants)
    times = {name: [] for name in names}
    for r in range(repeats):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            f = variants[name]["bessel_sum"]
            t0 = time.perf_counter()
            f(v, n)
            times[name].append(time.perf_counter() - t0)
    ns = {name: [t / n * 1e9 for t in ts] for name, ts in times.items()}
    out["ns_per_point"] = {name: _stats(xs) for name, xs in ns.items()}

    refchk = out.get("rel_err_vs_python", {})
    print("  %-13s %10s %10s %12s %11s" % ("impl", "min", "median", "rel.err", "1st call s"))
    for name in ("lldiff_opt3", "lldiff_opt2", "numba"):
        if name not in ns:
            continue
        st = out["ns_per_point"][name]
        print("  %-13s %10.2f %10.2f %12s %11.3f" % (
            name, st["min"], st["median"], _fmt(refchk.get(name), "%.1e"), warm_s[name]))
    if "numba" in ns:
        for name in ("lldiff_opt3", "lldiff_opt2"):
            if name in ns:
                rmin = _ratio(out["ns_per_point"][name]["min"], out["ns_per_point"]["numba"]["min"])
                rmed = _ratio(out["ns_per_point"][name]["median"],
                              out["ns_per_point"]["numba"]["median"])
                out["ratio_" + name + "_vs_numba"] = {"min": rmin, "median": rmed}
                print("  ratio %s/numba: min %.3f  median %.3f   (goal <= %.2f) %s" % (
                    name, rmin, rmed, GOALS["bessel_sum"],
                    _verdict(rmin, GOALS["bessel_sum"]) if name == "lldiff_opt3" else ""))
    res["_namespaces"] = variants   # reused by section 2 (not written to JSON)


# --------------------------------------------------------------------------------------
# section 2: scalar calls through the dispatcher
# --------------------------------------------------------------------------------------

def _calibrate(timer, target):
    number = 1
    while True:
        t = timer.timeit(number)
        if t >= target or number >= 10**8:
            return max(1, int(number * target / max(t, 1e-9)))
        number *= 10 if t < target / 20 else 2


def section_calls(cfg, res):
    print("\n== 2. scalar call from Python via the dispatcher: ns/call, min / median of %d"
          % cfg["call_repeats"])
    out = res.setdefault("calls", {"errors": {}})
    namespaces = dict(res.get("_namespaces") or {})
    if "numba" not in namespaces:
        try:
            import numba
            _numba_register_factorial()
            namespaces["numba"] = make_namespace(numba.njit, "numba")
        except Exception as e:
            out["errors"]["numba"] = _err(e)
            _print_exc("numba setup", e)
    if "lldiff_opt3" not in namespaces:
        try:
            lldiff = _import_lldiff()
            namespaces["lldiff_opt3"] = make_namespace(
                lambda f: lldiff.jit(f, opt=3), "lldiff_opt3")
        except Exception as e:
            out["errors"]["lldiff_opt3"] = _err(e)
            _print_exc("lldiff setup", e)
    impls = {"python": {"besselj": besselj, "add1": add1}}
    for name in ("lldiff_opt3", "numba"):
        if name in namespaces:
            impls[name] = {"besselj": namespaces[name]["besselj"], "add1": namespaces[name]["add1"]}

    cases = {"besselj": (2, 0.5), "add1": (1.5, 2.0)}
    timers = {}
    for fname, args in cases.items():
        for iname, fs in impls.items():
            f = fs[fname]
            try:
                got = f(*args)     # compile + sanity check
                want = globals()[fname](*args)
                if abs(got - want) > 1e-12 * max(1.0, abs(want)):
                    print("  !! %s %s%r = %r, python gives %r" % (iname, fname, args, got, want))
                tm = timeit.Timer("f(a, b)", globals={"f": f, "a": args[0], "b": args[1]})
                timers[(fname, iname)] = (tm, _calibrate(tm, cfg["call_target_s"]))
            except Exception as e:
                out["errors"]["%s/%s" % (iname, fname)] = _err(e)
                _print_exc("%s %s" % (iname, fname), e)
    # empty-loop baseline (timeit loop + global loads), for reference
    base = timeit.Timer("a; b", globals={"a": 1, "b": 2})
    timers[("baseline", "loop")] = (base, _calibrate(base, cfg["call_target_s"]))

    samples = {k: [] for k in timers}
    keys = list(timers)
    for r in range(cfg["call_repeats"]):
        order = keys[r % len(keys):] + keys[:r % len(keys)]
        for k in order:
            tm, number = timers[k]
            samples[k].append(tm.timeit(number) / number * 1e9)

    stats = {"%s/%s" % k: _stats(xs) for k, xs in samples.items()}
    out["ns_per_call"] = stats
    print("  %-9s %-13s %10s %10s" % ("func", "impl", "min", "median"))
    for fname, args in cases.items():
        for iname in ("lldiff_opt3", "numba", "python"):
            key = "%s/%s" % (fname, iname)
            if key in stats:
                print("  %-9s %-13s %10.1f %10.1f" % (
                    fname, iname,
                    stats[key]["min"], stats[key]["median"]))
        a, b = "%s/lldiff_opt3" % fname, "%s/numba" % fname
        if a in stats and b in stats:
            rmin = _ratio(stats[a]["min"], stats[b]["min"])
            rmed = _ratio(stats[a]["median"], stats[b]["median"])
            out["ratio_%s_lldiff_vs_numba" % fname] = {"min": rmin, "median": rmed}
            print("  ratio %s lldiff/numba: min %.3f  median %.3f   (goal <= %.2f) %s" % (
                fname, rmin, rmed, GOALS["call"], _verdict(rmin, GOALS["call"])))
    print("  (timeit empty-loop baseline: %.1f ns, included in all rows above)"
          % stats["baseline/loop"]["min"])


# --------------------------------------------------------------------------------------
# section 3: first-call compile time, fresh subprocesses
# --------------------------------------------------------------------------------------

_COMPILE_CHILD = r"""
import sys, time, json
side, opt, root, here = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
sys.path[:0] = [root, here]
res = {}
sys.dont_write_bytecode = True     # do not leave benchmarks/__pycache__ behind
import primal                      # plain-Python definitions; stdlib imports only
sys.dont_write_bytecode = False
t = time.perf_counter()
if side == "lldiff":
    import lldiff
    jit = lambda f: lldiff.jit(f, opt=opt)
else:
    import numba
    primal._numba_register_factorial()
    jit = numba.njit
res["import_s"] = time.perf_counter() - t

t0 = time.perf_counter()
f = jit(primal.besselj)
val = f(2, 0.5)
t1 = time.perf_counter()
res["first_s"] = t1 - t0
res["value"] = val
ct = getattr(f, "compile_time", None)
res["compile_time_attr"] = ct if isinstance(ct, (int, float)) else None
if side == "lldiff":   # the reverse-mode gradient on top (issue 6's compile-time goal)
    tg = time.perf_counter()
    res["grad_value"] = lldiff.grad(f, argnums=1)(2, 0.5)
    res["grad_s"] = time.perf_counter() - tg

t2 = time.perf_counter()
g = jit(primal.besselj_alt)
val2 = g(2, 0.5)
t3 = time.perf_counter()
res["second_s"] = t3 - t2
ct = getattr(g, "compile_time", None)
res["second_compile_time_attr"] = ct if isinstance(ct, (int, float)) else None
print("@@RESULT@@" + json.dumps(res))
"""


def _run_child(code, args, timeout=300):
    env = dict(os.environ)
    env.pop("NUMBA_CACHE_DIR", None)
    env.pop("NUMBA_DEBUG_CACHE", None)
    p = subprocess.run([sys.executable, "-c", code] + [str(a) for a in args],
                       capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)
    for line in p.stdout.splitlines():
        if line.startswith("@@RESULT@@"):
            return json.loads(line[len("@@RESULT@@"):])
    tail = (p.stderr.strip() or p.stdout.strip()).splitlines()
    raise RuntimeError("child exited %d: %s" % (p.returncode, " | ".join(tail[-3:])))


def section_compile(cfg, res):
    runs = cfg["compile_runs"]
    print("\n== 3. first call of besselj (decorate + compile + call), fresh process each, "
          "min / median of %d runs [s]" % runs)
    out = res.setdefault("compile", {"runs": runs, "errors": {}})
    configs = [("lldiff", 3), ("lldiff", 2), ("numba", 3)]
    samples = {"%s_opt%d" % c if c[0] == "lldiff" else "numba": [] for c in configs}
    for r in range(runs):
        for side, opt in configs:
            name = "%s_opt%d" % (side, opt) if side == "lldiff" else "numba"
            if name in out["errors"]:
                continue
            try:
                samples[name].append(_run_child(_COMPILE_CHILD, [side, opt, ROOT, HERE]))
            except Exception as e:
                out["errors"][name] = _err(e)
                print("  !! %s: %s" % (name, _err(e)))

    summary = {}
    for name, rs in samples.items():
        if not rs:
            continue
        s = {k: _stats([x[k] for x in rs]) for k in ("first_s", "second_s", "import_s")}
        for k in ("compile_time_attr", "second_compile_time_attr"):
            xs = [x[k] for x in rs if x.get(k) is not None]
            s[k] = _stats(xs) if xs else None
        summary[name] = s
    out["results"] = summary

    for name, rs in samples.items():
        gs = [x["grad_s"] + x["first_s"] for x in rs if "grad_s" in x]
        if gs and summary.get("numba"):
            both = _stats(gs)
            summary[name]["primal_plus_grad_s"] = both
            r = both["min"] / summary["numba"]["first_s"]["min"]
            print("  %s primal + gradient (first calls): %.3f s = %.2f of numba's primal "
                  "first call (goal <= 0.25) %s" % (name, both["min"], r, _verdict(r, 0.25)))
    print("  %-12s %15s %15s %18s" % ("impl", "first fn", "second fn", ".compile_time"))
    for name, s in summary.items():
        ct = s["compile_time_attr"]
        print("  %-12s %7.3f/%7.3f %7.3f/%7.3f %18s" % (
            name, s["first_s"]["min"], s["first_s"]["median"],
            s["second_s"]["min"], s["second_s"]["median"],
            "-" if ct is None else "%.3f/%.3f" % (ct["min"], ct["median"])))
    if "numba" in summary:
        nb = summary["numba"]
        for name in ("lldiff_opt3", "lldiff_opt2"):
            if name not in summary:
                continue
            s = summary[name]
            r1 = _ratio(s["first_s"]["min"], nb["first_s"]["min"])
            r2 = _ratio(s["first_s"]["min"], nb["second_s"]["min"])
            r3 = _ratio(s["second_s"]["min"], nb["second_s"]["min"])
            out["ratio_" + name + "_vs_numba"] = {
                "first_vs_first": r1, "first_vs_numba_second": r2, "second_vs_second": r3}
            print("  ratio %s/numba (min): first/first %.3f  first/numba-2nd %.3f  "
                  "2nd/2nd %.3f   (goal <= %.2f) %s" % (
                      name, r1, r2, r3, GOALS["compile"],
                      _verdict(r1, GOALS["compile"]) if name == "lldiff_opt3" else ""))


# --------------------------------------------------------------------------------------
# section 4: import time, fresh subprocesses
# --------------------------------------------------------------------------------------

_IMPORT_CHILD = r"""
import sys, time, json
mod, root = sys.argv[1], sys.argv[2]
sys.path.insert(0, root)
t = time.perf_counter()
__import__(mod)
dt = time.perf_counter() - t
m = sys.modules[mod]
print("@@RESULT@@" + json.dumps({
    "import_s": dt,
    "llvmlite.binding": "llvmlite.binding" in sys.modules,
    "llvmlite": "llvmlite" in sys.modules,
    "numba": "numba" in sys.modules,
    "numpy": "numpy" in sys.modules,
    "has_jit": hasattr(m, "jit"),
    "file": getattr(m, "__file__", None),
}))
"""


def _importtime_top(mod, k=5):
    """Heaviest direct sub-imports (cumulative us) of `import mod`, via -X importtime."""
    code = "import sys; sys.path.insert(0, %r); import %s" % (ROOT, mod)
    p = subprocess.run([sys.executable, "-X", "importtime", "-c", code],
                       capture_output=True, text=True, timeout=120, cwd=ROOT)
    rows = []   # (indent, cumulative_us, name) in output order (children before parents)
    for line in p.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        parts = line[len("import time:"):].split("|")
        if len(parts) != 3:
            continue
        try:
            cum = int(parts[1])
        except ValueError:
            continue
        name = parts[2].rstrip()
        rows.append((len(name) - len(name.lstrip()), cum, name.strip()))
    roots = [i for i, r in enumerate(rows) if r[2] == mod]
    if not roots:
        return []
    i = roots[-1]
    d0 = rows[i][0]
    children = []
    for j in range(i - 1, -1, -1):
        if rows[j][0] <= d0:
            break
        if rows[j][0] == d0 + 2:
            children.append((rows[j][1], rows[j][2]))
    children.sort(reverse=True)
    return [(rows[i][1], mod)] + children[:k]


def section_import(cfg, res):
    runs = cfg["import_runs"]
    print("\n== 4. import time in a fresh process, min / median of %d [ms]" % runs)
    out = res.setdefault("import", {"runs": runs, "errors": {}})
    for mod in ("lldiff", "numba"):
        samples = []
        for r in range(runs):
            try:
                samples.append(_run_child(_IMPORT_CHILD, [mod, ROOT], timeout=120))
            except Exception as e:
                out["errors"][mod] = _err(e)
                print("  !! import %s: %s" % (mod, _err(e)))
                break
        if not samples:
            continue
        st = _stats([x["import_s"] * 1e3 for x in samples])
        info = dict(samples[0])
        info.pop("import_s")
        out[mod] = {"ms": st, **info}
        extra = ""
        if mod == "lldiff":
            extra = "  llvmlite.binding imported: %s, numba imported: %s, numpy: %s%s" % (
                info["llvmlite.binding"], info["numba"], info["numpy"],
                "" if info["has_jit"] else "  (no lldiff.jit!)")
        print("  import %-7s %8.1f / %8.1f%s" % (mod, st["min"], st["median"], extra))
    if "lldiff" in out and "numba" in out and out["lldiff"].get("has_jit"):
        r = _ratio(out["lldiff"]["ms"]["min"], out["numba"]["ms"]["min"])
        out["ratio_lldiff_vs_numba"] = r
        print("  ratio import lldiff/numba (min): %.3f" % r)
    try:
        top = _importtime_top("lldiff")
        out["lldiff_importtime_top"] = [{"module": nm, "cumulative_us": us} for us, nm in top]
        if top:
            print("  heaviest under `import lldiff` (-X importtime, cumulative ms): " +
                  ", ".join("%s %.1f" % (nm, us / 1e3) for us, nm in top))
    except Exception as e:
        out["errors"]["importtime"] = _err(e)


# --------------------------------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, few repeats (smoke test)")
    ap.add_argument("--json", metavar="PATH", help="write results as JSON to PATH")
    ap.add_argument("--sections", default="1234",
                    help="which sections to run, e.g. 12 (default 1234)")
    args = ap.parse_args(argv)

    if args.quick:
        cfg = dict(n=10**4, repeats=3, call_repeats=3, call_target_s=0.01,
                   compile_runs=1, import_runs=2)
    else:
        cfg = dict(n=10**6, repeats=15, call_repeats=7, call_target_s=0.1,
                   compile_runs=5, import_runs=5)

    info = machine_info()
    load_start = _loadavg()
    t_start = time.time()
    print("lldiff primal benchmark%s" % (" (--quick)" if args.quick else ""))
    print("machine: %s | %s cores (%s available) | Python %s | llvmlite %s | numba %s | "
          "lldiff %s | load %s" % (info["cpu"], info["cores"], info["cores_available"],
                                   info["python"], info["llvmlite"], info["numba"],
                                   info["lldiff_rev"], load_start))

    res = {"machine": info, "config": cfg, "goals": GOALS, "load_start": load_start}
    sections = [("1", section_bessel_sum), ("2", section_calls),
                ("3", section_compile), ("4", section_import)]
    for key, fn in sections:
        if key not in args.sections:
            continue
        try:
            fn(cfg, res)
        except Exception as e:
            res.setdefault("section_errors", {})[key] = _err(e)
            _print_exc("section %s" % key, e)

    res.pop("_namespaces", None)
    load_end = _loadavg()
    res["load_end"] = load_end
    res["wall_s"] = time.time() - t_start

    # compact summary
    print("\n== summary (min-based ratios; goal in brackets)")
    bs = res.get("bessel_sum", {}).get("ratio_lldiff_opt3_vs_numba")
    print("  bessel_sum ns/point lldiff(opt3)/numba : %s  [<= %.2f] %s" % (
        _fmt(bs and bs["min"], "%.3f"), GOALS["bessel_sum"],
        _verdict(bs and bs["min"], GOALS["bessel_sum"])))
    for fname in ("besselj", "add1"):
        c = res.get("calls", {}).get("ratio_%s_lldiff_vs_numba" % fname)
        print("  call %-8s lldiff/numba            : %s  [<= %.2f] %s" % (
            fname, _fmt(c and c["min"], "%.3f"), GOALS["call"], _verdict(c and c["min"], GOALS["call"])))
    cp = res.get("compile", {}).get("ratio_lldiff_opt3_vs_numba")
    print("  compile lldiff(opt3)/numba first call : %s  [<= %.2f] %s  (vs numba 2nd fn: %s)" % (
        _fmt(cp and cp["first_vs_first"], "%.3f"), GOALS["compile"],
        _verdict(cp and cp["first_vs_first"], GOALS["compile"]),
        _fmt(cp and cp["first_vs_numba_second"], "%.3f")))
    im = res.get("import", {})
    if "lldiff" in im:
        print("  import lldiff %.1f ms (numba %s ms), llvmlite.binding imported: %s" % (
            im["lldiff"]["ms"]["min"], _fmt(im.get("numba", {}).get("ms", {}).get("min")),
            im["lldiff"]["llvmlite.binding"]))
    print("machine: %s | %s cores | Python %s | llvmlite %s | numba %s | load start %s, end %s"
          " | %.0f s" % (info["cpu"], info["cores"], info["python"], info["llvmlite"],
                         info["numba"], load_start, load_end, res["wall_s"]))

    if args.json:
        with open(args.json, "w") as fh:
            json.dump(res, fh, indent=2, sort_keys=True, default=repr)
        print("wrote %s" % args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
