"""The disk cache (`cache=True`): hits in other processes, what invalidates an entry, corrupted
and concurrent entries, and the object loader (runtime/objload.py) against the JIT on the
whole corpus.

Processes are real subprocesses with their own $LLDIFF_CACHE_DIR, so nothing here touches the
user's cache.
"""

import json
import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import lldiff
from lldiff.runtime import diskcache, objload

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import corpus  # noqa: E402
from test_corpus import FUNCS, _jit_namespace, run  # noqa: E402

BESSEL = '''
import math
import sys

import lldiff

ORDER = 2.0


@lldiff.jit
def series(v, z):
    term = (z / 2.0) ** v / math.gamma(v + 1.0)
    s = term
    k = 0
    while abs(term) > 1e-16 * abs(s):
        k += 1
        term = -term * (z * z / 4.0) / (k * (k + v))
        s += term
    return s


@lldiff.jit_grad(cache=True)
def bessel(v, z):
    return series(v, z)


@lldiff.jit(cache=True)
def order_two(z):
    return series(ORDER, z)
'''

RUN = '''
import json, sys
sys.path.insert(0, sys.argv[1])
import mod
from lldiff.runtime import diskcache
value, (dv, dz) = mod.bessel(2.0, 3.5)
out = {"value": value.hex(), "dv": dv.hex(), "dz": dz.hex(), "stats": diskcache.stats,
       "binding": "llvmlite.binding" in sys.modules, "frontend": "lldiff.frontend" in sys.modules}
print(json.dumps(out))
'''


def _run(tmp_path, script=RUN, env_extra=None):
    env = dict(os.environ, LLDIFF_CACHE_DIR=str(tmp_path / "cache"))
    env.update(env_extra or {})
    p = subprocess.run([sys.executable, "-c", script, str(tmp_path)], env=env,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout.strip().splitlines()[-1])


def _entries(tmp_path):
    d = tmp_path / "cache"
    return sorted(d.glob("*.lldc")) if d.exists() else []


@pytest.fixture
def bessel_module(tmp_path):
    (tmp_path / "mod.py").write_text(BESSEL)
    return tmp_path


def test_second_process_loads_instead_of_compiling(bessel_module):
    tmp = bessel_module
    first = _run(tmp)
    assert first["stats"]["stored"] == 1 and first["stats"]["hits"] == 0
    assert len(_entries(tmp)) == 1
    second = _run(tmp)
    assert second["stats"] == {"hits": 1, "misses": 0, "rejected": 0, "stored": 0}
    # a hit needs neither LLVM nor the frontend
    assert not second["binding"] and not second["frontend"]
    for k in ("value", "dv", "dz"):
        assert second[k] == first[k]  # bit for bit
    from scipy.special import jv, jvp
    assert float.fromhex(first["value"]) == pytest.approx(jv(2.0, 3.5), rel=1e-14)
    assert float.fromhex(first["dz"]) == pytest.approx(jvp(2.0, 3.5), rel=1e-12)


VECTORIZE = '''
import json, sys
sys.path.insert(0, sys.argv[1])
import numpy as np
import lldiff
import mod
from lldiff.runtime import diskcache
z = np.linspace(0.5, 9.5, 1001)
f = lldiff.jit(mod.series.py_func, cache=True)
y = lldiff.vectorize(f)(2.0, z)
g = lldiff.vectorize(lldiff.grad(f, argnums=1))(2.0, z)
j = lldiff.vectorize(lldiff.jacfwd(f, argnums=1), simd=False)(2.0, z)
a = lldiff.vectorize(lldiff.jit(mod.makes_array, cache=True))(3, z)  # no SPMD form
out = {"y": [v.hex() for v in y], "g": [v.hex() for v in g], "j": [v.hex() for v in j],
       "a": [v.hex() for v in a],
       "stats": diskcache.stats, "binding": "llvmlite.binding" in sys.modules,
       "frontend": "lldiff.frontend" in sys.modules}
print(json.dumps(out))
'''


MAKES_ARRAY = '''

import numpy as np


def makes_array(n, x):
    a = np.zeros(n)
    a[0] = x
    return a[0] * 2.0
'''


def test_vectorize_loads_its_kernels_without_building_ir(bessel_module):
    """Map kernels (SIMD and scalar, value and derivatives, and a function with no SPMD
    form) from the cache: the second process builds no IR and loads no LLVM, and maps the
    same bits."""
    tmp = bessel_module
    with open(tmp / "mod.py", "a") as fh:
        fh.write(MAKES_ARRAY)
    # 4 kernels, the result count the derivatives need, "no SPMD form" for makes_array
    first = _run(tmp, VECTORIZE)
    assert first["stats"]["stored"] == 6
    second = _run(tmp, VECTORIZE)
    assert second["stats"]["misses"] == second["stats"]["stored"] == 0
    assert second["stats"]["hits"] == 7  # 4 kernels, the result count twice, no SPMD form
    assert not second["binding"] and not second["frontend"]
    assert [float.fromhex(v) for v in first["a"]] == list(2 * np.linspace(0.5, 9.5, 1001))
    for k in ("y", "g", "j", "a"):
        assert second[k] == first[k]
    from scipy.special import jv, jvp
    z = np.linspace(0.5, 9.5, 1001)
    np.testing.assert_allclose([float.fromhex(v) for v in first["y"]], jv(2.0, z),
                               rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose([float.fromhex(v) for v in first["g"]], jvp(2.0, z),
                               rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose([float.fromhex(v) for v in first["j"]], jvp(2.0, z),
                               rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("damage", ["flip", "truncate", "garbage", "empty"])
def test_corrupted_entry_is_recompiled(bessel_module, damage):
    tmp = bessel_module
    first = _run(tmp)
    (path,) = _entries(tmp)
    blob = bytearray(path.read_bytes())
    if damage == "flip":  # one bit deep in the machine code
        blob[len(blob) - 200] ^= 0x10
    elif damage == "truncate":
        blob = blob[:len(blob) // 2]
    elif damage == "garbage":
        blob = bytearray(b"\x7fELF" + bytes(range(256)) * 4)
    else:
        blob = bytearray()
    path.write_bytes(bytes(blob))
    again = _run(tmp)
    assert again["stats"]["rejected"] == 1 and again["stats"]["stored"] == 1
    assert again["value"] == first["value"] and again["dz"] == first["dz"]
    third = _run(tmp)  # the entry was replaced by a good one
    assert third["stats"]["hits"] == 1 and third["stats"]["rejected"] == 0


def test_edited_source_is_a_miss(bessel_module):
    """(The edit is in `series`, which the cached `bessel` calls.)"""
    tmp = bessel_module
    first = _run(tmp)
    (tmp / "mod.py").write_text(BESSEL.replace("1e-16 * abs(s)", "1e-3 * abs(s)"))
    edited = _run(tmp)
    assert edited["stats"]["stored"] == 1 and edited["stats"]["hits"] == 0
    assert edited["value"] != first["value"]  # the looser tolerance stops earlier
    assert len(_entries(tmp)) == 2


def test_changed_global_constant_is_a_miss(tmp_path):
    (tmp_path / "mod.py").write_text(BESSEL)
    script = RUN.replace("value, (dv, dz) = mod.bessel(2.0, 3.5)",
                         "value = mod.order_two(3.5); dv = dz = 0.0")
    first = _run(tmp_path, script)
    assert first["stats"]["stored"] == 1
    (tmp_path / "mod.py").write_text(BESSEL.replace("ORDER = 2.0", "ORDER = 3.0"))
    second = _run(tmp_path, script)
    assert second["stats"]["hits"] == 0 and second["stats"]["stored"] == 1
    from scipy.special import jv
    assert float.fromhex(second["value"]) == pytest.approx(jv(3.0, 3.5), rel=1e-14)
    third = _run(tmp_path, script)
    assert third["stats"]["hits"] == 1 and third["value"] == second["value"]


def test_edited_callee_in_another_module_is_a_miss(tmp_path):
    (tmp_path / "helper.py").write_text(textwrap.dedent('''
        import lldiff

        @lldiff.jit
        def scale(x):
            return 2.0 * x
    '''))
    (tmp_path / "mod.py").write_text(textwrap.dedent('''
        import lldiff
        from helper import scale

        @lldiff.jit(cache=True)
        def f(x):
            return scale(x) + 1.0
    '''))
    script = textwrap.dedent('''
        import json, sys
        sys.path.insert(0, sys.argv[1])
        import mod
        from lldiff.runtime import diskcache
        print(json.dumps({"y": mod.f(3.0), "stats": diskcache.stats}))
    ''')
    assert _run(tmp_path, script)["y"] == 7.0
    assert _run(tmp_path, script)["stats"]["hits"] == 1
    (tmp_path / "helper.py").write_text((tmp_path / "helper.py").read_text()
                                        .replace("2.0 * x", "3.0 * x"))
    out = _run(tmp_path, script)
    assert out["y"] == 10.0 and out["stats"]["hits"] == 0


def test_concurrent_writers_leave_a_valid_entry(bessel_module):
    tmp = bessel_module
    env = dict(os.environ, LLDIFF_CACHE_DIR=str(tmp / "cache"))
    procs = [subprocess.Popen([sys.executable, "-c", RUN, str(tmp)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(4)]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        outs.append(json.loads(out.strip().splitlines()[-1]))
    assert len({(o["value"], o["dz"]) for o in outs}) == 1
    assert len(_entries(tmp)) == 1
    assert not list((tmp / "cache").glob(".tmp-*"))  # no temporary files left behind
    after = _run(tmp)
    assert after["stats"]["hits"] == 1 and after["value"] == outs[0]["value"]


def test_arrays_and_writes_from_the_cache(tmp_path):
    (tmp_path / "mod.py").write_text(textwrap.dedent('''
        import numpy as np
        import lldiff

        @lldiff.jit(cache=True)
        def scaled(x, out):
            n = x.shape[0]
            for i in range(n):
                out[i] = 2.0 * x[i]
            y = np.zeros(n)
            for i in range(n):
                y[i] = out[i] + 1.0
            return y

        @lldiff.jit_grad(cache=True)
        def l2(x):
            s = 0.0
            for i in range(x.shape[0]):
                s += x[i] * x[i]
            return s
    '''))
    script = textwrap.dedent('''
        import json, sys
        import numpy as np
        sys.path.insert(0, sys.argv[1])
        import mod
        from lldiff.runtime import diskcache
        x = np.arange(4.0)
        out = np.zeros(4)
        y = mod.scaled(x, out)
        v, g = mod.l2(x)
        ro = np.zeros(4)
        ro.setflags(write=False)
        try:
            mod.scaled(x, ro)
            err = None
        except ValueError as e:
            err = str(e)
        print(json.dumps({"y": y.tolist(), "out": out.tolist(), "v": v, "g": g.tolist(),
                          "err": err, "stats": diskcache.stats}))
    ''')
    first = _run(tmp_path, script)
    second = _run(tmp_path, script)
    assert second["stats"]["hits"] == 2 and second["stats"]["stored"] == 0
    for out in (first, second):
        assert out["out"] == [0.0, 2.0, 4.0, 6.0] and out["y"] == [1.0, 3.0, 5.0, 7.0]
        assert out["v"] == 14.0 and out["g"] == [0.0, 2.0, 4.0, 6.0]
        assert "read-only" in out["err"] and "'out'" in out["err"]


def test_unwritable_cache_dir_still_runs(bessel_module, tmp_path):
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the directory should be")
    out = _run(bessel_module)
    assert out["stats"]["stored"] == 0
    from scipy.special import jv
    assert float.fromhex(out["value"]) == pytest.approx(jv(2.0, 3.5), rel=1e-14)


def test_timing_reports_the_disk_cache(bessel_module):
    _run(bessel_module)
    env = dict(os.environ, LLDIFF_CACHE_DIR=str(bessel_module / "cache"), LLDIFF_TIMING="1")
    p = subprocess.run([sys.executable, "-c", RUN, str(bessel_module)], env=env,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert "bessel(f64, f64) grad:" in p.stderr and "(disk cache)" in p.stderr


# --- in this process: the object loader on the corpus, fallbacks -----------------------------

@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("lldiff-cache")
    old = os.environ.get("LLDIFF_CACHE_DIR")
    os.environ["LLDIFF_CACHE_DIR"] = str(d)
    yield d
    if old is None:
        del os.environ["LLDIFF_CACHE_DIR"]
    else:
        os.environ["LLDIFF_CACHE_DIR"] = old


def _cached_namespace(opt):
    class Cached:
        @staticmethod
        def jit(fn, opt):
            return lldiff.jit(fn, opt=opt, cache=True)
    return _jit_namespace(Cached, opt)


def _same(a, b):
    if a.exc is not None or b.exc is not None:
        return type(a.exc) is type(b.exc)
    x, y = a.value, b.value
    if isinstance(x, tuple):
        return isinstance(y, tuple) and len(x) == len(y) and \
            all(_same(type(a)(v), type(b)(w)) for v, w in zip(x, y))
    if isinstance(x, float) and isinstance(y, float):
        return x.hex() == y.hex() or (math.isnan(x) and math.isnan(y))
    return type(x) is type(y) and x == y


@pytest.mark.skipif(not objload.supported(), reason="the object loader is for x86-64 Linux")
def test_object_loader_matches_the_jit_on_the_corpus(cache_dir):
    jitted = _jit_namespace(lldiff, 2)
    stored = _cached_namespace(2)  # compiles to object files, stores and loads them
    before = dict(diskcache.stats)
    loaded = _cached_namespace(2)  # fresh dispatchers: every entry comes from disk
    cases = [(c.fn.__name__, args) for c in corpus.CASES for args in c.inputs]
    for name, args in cases:
        want = run(jitted[name], args)
        for ns in (stored, loaded):
            got = run(ns[name], args)
            assert _same(want, got), f"{name}{args!r}: jit {want}, cached {got}"
    assert diskcache.stats["hits"] - before["hits"] >= len(FUNCS) // 2
    assert diskcache.stats["rejected"] == before["rejected"]


def test_llvm_loader_fallback(cache_dir, monkeypatch):
    """Where objload does not apply, the same entries load through LLVM's JIT linker."""
    f = lldiff.jit(cache=True)(_fresh_function())
    want = f(2.0, 3)
    monkeypatch.setattr(objload, "supported", lambda: False)
    g = lldiff.jit(cache=True)(_fresh_function())
    hits = diskcache.stats["hits"]
    assert g(2.0, 3) == want == 11.0 and diskcache.stats["hits"] == hits + 1


def _fresh_function():
    def poly(x, n):
        s = 0.0
        for k in range(n):
            s = s * x + (k + 1.0)
        return s
    return poly


def test_unsupported_objects_are_refused():
    with pytest.raises(objload.UnsupportedObject):
        objload.load_object(b"not an object file at all" * 4, ["f"])
    with pytest.raises(objload.UnsupportedObject):
        objload.load_object(b"\x7fELF\x01\x01" + bytes(100), ["f"])  # 32-bit


def test_signature_agrees_with_the_dispatcher():
    from lldiff.api import _mangle
    from lldiff.caching import signature
    from lldiff.frontend import type_of_python_value
    values = [1.5, 3, True, np.zeros(3), np.zeros((2, 3), np.float32), np.zeros((3, 2))[:, 0],
              np.zeros(2, np.int64), np.zeros((2, 2)).T]
    for v in values:
        assert signature([("x", v)]) == _mangle(type_of_python_value(v))
    assert signature([("x", np.float64(1.0))]) is None  # converted by the dispatcher first
    assert signature([("x", np.zeros(3, ">f8"))]) is None
    assert signature([]) == "void"


def test_edited_custom_rule_is_a_miss(tmp_path):
    (tmp_path / "mod.py").write_text(textwrap.dedent('''
        import lldiff

        @lldiff.custom_jvp
        def cube(x):
            return x * x * x

        @cube.defjvp
        def cube_jvp(x, dx):
            return x * x * x, 3.0 * x * x * dx

        @lldiff.jit_grad(cache=True)
        def f(x):
            return cube(x) + 1.0
    '''))
    script = textwrap.dedent('''
        import json, sys
        sys.path.insert(0, sys.argv[1])
        import mod
        from lldiff.runtime import diskcache
        print(json.dumps({"g": mod.f(2.0)[1], "stats": diskcache.stats}))
    ''')
    assert _run(tmp_path, script)["g"] == 12.0
    assert _run(tmp_path, script)["stats"]["hits"] == 1
    (tmp_path / "mod.py").write_text((tmp_path / "mod.py").read_text()
                                     .replace("3.0 * x * x * dx", "7.0 * dx"))
    out = _run(tmp_path, script)
    assert out["g"] == 7.0 and out["stats"]["hits"] == 0
