"""Compiled functions and derivatives in other processes (lldiff/pickling.py): pickled by
reference or by source, run in a multiprocessing pool, in a fresh interpreter that lacks the
defining file, and on a Dask cluster of worker processes; `lldiff.vectorize` maps dask arrays
block-wise. Results are checked against the same calls made here."""

import math
import multiprocessing
import os
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import lldiff

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import corpus  # noqa: E402


@lldiff.jit
def scaled(x, y):
    return 3.0 * x * y + math.sin(x)


def make_local(k):
    @lldiff.jit
    def local(x, y):
        return scaled(x, y) * k + math.exp(-y)
    return local


def _roundtrip(f):
    return pickle.loads(pickle.dumps(f))


def test_module_level_functions_pickle_by_reference():
    assert _roundtrip(scaled) is scaled  # the module's own object
    assert len(pickle.dumps(scaled)) < 100


def test_local_functions_and_derivatives_pickle_by_source():
    local = make_local(2.5)
    again = _roundtrip(local)
    assert again is not local and again(0.3, 1.7) == local(0.3, 1.7)
    for make in (lambda f: lldiff.grad(f, (0, 1)), lambda f: lldiff.value_and_grad(f, 1),
                 lambda f: lldiff.jacfwd(f, 0), lambda f: lldiff.jacrev(f, 1),
                 lambda f: lldiff.hessian(f, (0, 1)), lldiff.jit_grad):
        d = make(local)
        assert _roundtrip(d)(0.3, 1.7) == d(0.3, 1.7)
    # closed form of the local function's gradient, as an oracle
    g = _roundtrip(lldiff.grad(local, (0, 1)))(0.3, 1.7)
    assert g[0] == pytest.approx(2.5 * (3.0 * 1.7 + math.cos(0.3)), rel=1e-14)
    assert g[1] == pytest.approx(2.5 * 3.0 * 0.3 - math.exp(-1.7), rel=1e-14)


def test_derivatives_of_plain_local_functions_pickle():
    def plain(x, y):
        return x * math.cos(y)

    g = lldiff.grad(plain, (0, 1))
    again = _roundtrip(g)
    assert again(0.5, 1.25) == g(0.5, 1.25)
    assert g(0.5, 1.25) == pytest.approx((math.cos(1.25), -0.5 * math.sin(1.25)), rel=1e-15)


def test_options_and_custom_rules_survive_pickling():
    f = lldiff.jit(make_local(1.0).py_func, opt=1, fastmath=True, boundscheck=True)
    again = _roundtrip(f)
    assert (again.opt, again.fastmath, again.boundscheck) == (1, True, True)

    def clipped(x):
        return x * x

    c = lldiff.custom_jvp(clipped)
    c.defjvp(lambda_rule)
    again = _roundtrip(c)
    assert lldiff.grad(again)(3.0) == 1.0  # the rule's derivative, not 2x


@lldiff.jit
def lambda_rule(x, dx):
    return x * x, dx


def _scripted(tmp_path):
    """Pickles of functions defined in a script's __main__, written by a separate process."""
    script = tmp_path / "defines.py"
    script.write_text(textwrap.dedent("""
        import math, pickle, sys
        import lldiff

        @lldiff.jit
        def helper(x):
            return x * x

        def outer(k):
            def inner(x, y):
                return helper(x) * k + math.log(y)
            return inner

        f = lldiff.jit(outer(4.0))
        pickle.dump((f, lldiff.grad(f, (0, 1)), lldiff.vectorize(f)),
                    open(sys.argv[1], "wb"))
    """))
    out = tmp_path / "f.pickle"
    r = subprocess.run([sys.executable, str(script), str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    script.unlink()  # the other side must not need the file
    return out


def test_a_fresh_interpreter_rebuilds_script_functions_from_source(tmp_path):
    out = _scripted(tmp_path)
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
        import pickle, numpy as np
        f, g, vf = pickle.load(open({str(out)!r}, "rb"))
        print(f(1.5, 2.0), *g(1.5, 2.0), vf(np.array([1.0, 1.5]), 2.0)[1])
    """)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    v, gx, gy, vv = map(float, r.stdout.split())
    assert v == 1.5 ** 2 * 4.0 + math.log(2.0) == vv
    assert gx == 2 * 1.5 * 4.0 and gy == 0.5


def _apply(f, x):
    return f(x, 2.0)


def test_functions_and_gradients_run_in_a_spawned_pool():
    local = make_local(0.5)
    g = lldiff.grad(local, 0)
    xs = [0.1 * i for i in range(8)]
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        got_f = pool.starmap(_apply, [(local, x) for x in xs])
        got_g = pool.starmap(_apply, [(g, x) for x in xs])
    assert got_f == [local(x, 2.0) for x in xs]
    assert got_g == [g(x, 2.0) for x in xs]


def test_vectorize_maps_dask_arrays_block_wise():
    da = pytest.importorskip("dask.array")
    z = np.linspace(0.05, 10, 1001)
    dz = da.from_array(z, chunks=200)
    vf = lldiff.vectorize(corpus.besselj)
    y = vf(np.array([[0], [1], [3]]), dz)
    assert isinstance(y, da.Array) and y.shape == (3, 1001)
    np.testing.assert_array_equal(y.compute(), vf(np.array([[0], [1], [3]]), z))
    vg = lldiff.vectorize(lldiff.value_and_grad(corpus.besselj, 1))
    value, slope = vg(2, dz)
    assert isinstance(slope, da.Array)
    want = vg(2, z)
    np.testing.assert_array_equal(value.compute(), want[0])
    np.testing.assert_array_equal(slope.compute(), want[1])
    from scipy.special import jvp
    np.testing.assert_allclose(slope.compute(), jvp(2, z), rtol=1e-9, atol=1e-12)
    with pytest.raises(ValueError, match="out= is not supported with dask"):
        vf(2, dz, out=np.empty(1001))


def test_a_dask_cluster_of_worker_processes_runs_them():
    distributed = pytest.importorskip("distributed")
    da = pytest.importorskip("dask.array")
    local = make_local(1.25)
    g = lldiff.grad(local, 0)
    z = np.linspace(0.1, 3.0, 4000)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        futures = client.map(g, list(z[:20]), [2.0] * 20)
        assert client.gather(futures) == [g(x, 2.0) for x in z[:20]]
        dz = da.from_array(z, chunks=500)
        got = lldiff.vectorize(g)(dz, 2.0).compute()  # blocks run on the workers
        pids = client.run(os.getpid)
    assert os.getpid() not in pids.values()
    np.testing.assert_array_equal(got, lldiff.vectorize(g)(z, 2.0))
