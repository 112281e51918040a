"""examples/: each runs as a script, and each result is checked against an oracle that is not
lldiff (scipy.special, the data's generating parameters, closed forms)."""

import importlib.util
import math
import os
import subprocess
import sys

import numpy as np
import pytest

import lldiff

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "examples")
NAMES = ["bessel_plot", "mds", "ode_fit", "hutchinson", "scipy_fit"]


def load(name):
    spec = importlib.util.spec_from_file_location(f"lldiff_example_{name}",
                                                  os.path.join(EXAMPLES, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", NAMES)
def test_each_example_runs_as_a_script(name, tmp_path):
    pytest.importorskip("scipy")
    pytest.importorskip("matplotlib")
    args = [str(tmp_path / "out.png")] if name == "bessel_plot" else []
    r = subprocess.run([sys.executable, os.path.join(EXAMPLES, f"{name}.py"), *args],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip()


def test_bessel_plot_draws_scipys_functions_and_derivatives(tmp_path):
    pytest.importorskip("matplotlib")
    from scipy.special import jv, jvp
    png = tmp_path / "bessel.png"
    x, data = load("bessel_plot").main([str(png)])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    assert sorted(data) == [0, 1, 2, 3, 4, 5] and x[0] == 0.0 and x[-1] == 10.0
    for v, (y, g) in data.items():
        np.testing.assert_allclose(y, jv(v, x), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(g, jvp(v, x), rtol=1e-9, atol=1e-12)


def test_mds_recovers_the_distances():
    mds = load("mds")
    X, D, W, history = mds.main()
    assert history[-1] < 1e-20 * history[0]
    np.testing.assert_allclose(mds.squared_distances(W), D, atol=1e-9)


def test_ode_fit_recovers_the_generating_parameters():
    pytest.importorskip("scipy")
    (r_true, K_true), result = load("ode_fit").main()
    assert result.success
    # the RK4 model (h = 0.05) differs from the exact solution by ~1e-8
    assert result.x == pytest.approx([r_true, K_true], rel=1e-6)


def test_ode_fit_gradient_matches_finite_differences():
    ode = load("ode_fit")
    y0 = 0.5
    observed = np.array([ode.exact(t, 0.8, 12.0, y0) for t in range(1, 11)])
    _, (dr, dK) = lldiff.value_and_grad(ode.loss, (0, 1))(0.6, 9.0, y0, observed)
    f = lldiff.jit(ode.loss)
    h = 1e-6
    fd_r = (f(0.6 + h, 9.0, y0, observed) - f(0.6 - h, 9.0, y0, observed)) / (2 * h)
    fd_K = (f(0.6, 9.0 + h, y0, observed) - f(0.6, 9.0 - h, y0, observed)) / (2 * h)
    assert dr == pytest.approx(fd_r, rel=1e-6) and dK == pytest.approx(fd_K, rel=1e-6)


def test_hutchinson_estimates_the_closed_form_trace():
    hut = load("hutchinson")
    est, stderr, exact = hut.main()
    assert abs(est - exact) < 4 * stderr
    # the closed-form Hessian, against lldiff's
    rng = np.random.default_rng(0)
    w, c = rng.normal(size=6), rng.uniform(0.5, 2.0, size=6)
    H = np.diag(c ** 2 / np.cosh(c * w) ** 2) + np.ones((6, 6))
    assert math.isclose(np.trace(H), hut.exact_trace(w, c), rel_tol=1e-14)
    v = rng.normal(size=6)
    np.testing.assert_allclose(lldiff.hvp(hut.f, (w, c), (v, None)), H @ v, rtol=1e-12)


def test_scipy_minimize_with_lldiff_grad_and_hessian_finds_the_optimum():
    pytest.importorskip("scipy")
    truth, result = load("scipy_fit").main()
    assert result.success and result.fun < 1e-20
    np.testing.assert_allclose(result.x, truth, rtol=1e-9)
