"""ADBench's Gaussian mixture objective written as plain loops, on ADBench's data
(../shared/adbench, MIT), against the objective and gradient ADBench's own tests expect.
"""

import json
import math
import os

import numpy as np
import pytest

import lldiff

ADBENCH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared",
                       "adbench")

pytestmark = pytest.mark.skipif(not os.path.isdir(ADBENCH), reason="../shared/adbench missing")


def gmm_objective(alphas, means, icf, x, gamma, m):
    """ADBench GMM: log-likelihood of x under K Gaussians with Cholesky-parametrized
    precisions (icf: d log-diagonal entries, then the strict lower triangle by columns),
    plus a Wishart prior."""
    n, d, K = x.shape[0], x.shape[1], alphas.shape[0]
    xc = np.zeros(d)
    qxc = np.zeros(d)
    inner = np.zeros(K)
    slse = 0.0
    for i in range(n):
        for k in range(K):
            sum_q = 0.0
            for j in range(d):
                sum_q += icf[k, j]
                xc[j] = x[i, j] - means[k, j]
            for r in range(d):
                qxc[r] = math.exp(icf[k, r]) * xc[r]
            idx = d
            for c in range(d):
                for r in range(c + 1, d):
                    qxc[r] += icf[k, idx] * xc[c]
                    idx += 1
            sq = 0.0
            for r in range(d):
                sq += qxc[r] * qxc[r]
            inner[k] = alphas[k] + sum_q - 0.5 * sq
        mx = inner[0]
        for k in range(1, K):
            mx = max(mx, inner[k])
        se = 0.0
        for k in range(K):
            se += math.exp(inner[k] - mx)
        slse += math.log(se) + mx
    amx = alphas[0]
    for k in range(1, K):
        amx = max(amx, alphas[k])
    ase = 0.0
    for k in range(K):
        ase += math.exp(alphas[k] - amx)
    lse_alphas = math.log(ase) + amx
    # Wishart prior
    nw = d + m + 1
    prior = 0.0
    for k in range(K):
        frob = 0.0
        sum_q = 0.0
        for j in range(icf.shape[1]):
            if j < d:
                frob += math.exp(2.0 * icf[k, j])
                sum_q += icf[k, j]
            else:
                frob += icf[k, j] * icf[k, j]
        prior += 0.5 * gamma * gamma * frob - m * sum_q
    lgd = 0.25 * d * (d - 1) * math.log(math.pi)
    for j in range(1, d + 1):
        lgd += math.lgamma(0.5 * nw + 0.5 * (1 - j))
    C = nw * d * (math.log(gamma) - 0.5 * math.log(2.0)) - lgd
    const = -n * d * 0.5 * math.log(2 * math.pi)
    return const + slse - n * lse_alphas + prior - K * C


def read_gmm(path):
    with open(path) as fh:
        tok = fh.read().split()
    d, K, n = (int(t) for t in tok[:3])
    pos = 3

    def take(count):
        nonlocal pos
        out = np.array([float(t) for t in tok[pos:pos + count]])
        pos += count
        return out
    alphas = take(K)
    means = take(K * d).reshape(K, d)
    icf = take(K * (d + d * (d - 1) // 2)).reshape(K, -1)
    x = take(n * d).reshape(n, d)
    gamma, m = float(tok[pos]), int(tok[pos + 1])
    return alphas, means, icf, x, gamma, m


def test_gmm_objective_and_gradient_match_adbench():
    with open(os.path.join(ADBENCH, "adbench_expected.json")) as fh:
        expected = json.load(fh)["gmm_test"]
    args = read_gmm(os.path.join(ADBENCH, "gmm", "test.txt"))
    f = lldiff.jit(gmm_objective)
    assert f(*args) == pytest.approx(expected["objective"], rel=1e-8, abs=1e-8)
    assert gmm_objective(*args) == pytest.approx(expected["objective"], rel=1e-8)
    value, (ga, gm, gi) = lldiff.value_and_grad(f, argnums=(0, 1, 2))(*args)
    assert value == pytest.approx(expected["objective"], rel=1e-8, abs=1e-8)
    got = np.concatenate([ga, gm.ravel(), gi.ravel()])
    np.testing.assert_allclose(got, expected["gradient"], rtol=1e-8, atol=1e-8)


def test_gmm_gradient_on_1000_points_against_finite_differences():
    alphas, means, icf, x, gamma, m = read_gmm(os.path.join(ADBENCH, "gmm", "1k",
                                                            "gmm_d2_K5.txt"))
    x = x[:200]
    f = lldiff.jit(gmm_objective)
    ga, gm, gi = lldiff.grad(f, argnums=(0, 1, 2))(alphas, means, icf, x, gamma, m)
    rng = np.random.default_rng(3)
    for k, g in ((0, ga), (1, gm), (2, gi)):
        v = rng.normal(size=g.shape)
        args = [alphas, means, icf, x, gamma, m]
        h = 1e-6
        hi = list(args)
        lo = list(args)
        hi[k] = args[k] + h * v
        lo[k] = args[k] - h * v
        fd = (f(*hi) - f(*lo)) / (2 * h)
        assert np.sum(g * v) == pytest.approx(fd, rel=1e-6)
        _, dy = lldiff.jvp(f, tuple(args), tuple(v if i == k else None for i in range(6)))
        assert dy == pytest.approx(np.sum(g * v), rel=1e-12)


def ba_residual(cams, X, w, feats, obs, i, k):
    """Component k (0 or 1) of ADBench's weighted reprojection error of observation i:
    Rodrigues rotation, projection, radial distortion, focal length and principal point."""
    c = obs[i, 0]
    p = obs[i, 1]
    x0 = X[p, 0] - cams[c, 3]
    x1 = X[p, 1] - cams[c, 4]
    x2 = X[p, 2] - cams[c, 5]
    r0, r1, r2 = cams[c, 0], cams[c, 1], cams[c, 2]
    sqtheta = r0 * r0 + r1 * r1 + r2 * r2
    if sqtheta != 0.0:
        theta = math.sqrt(sqtheta)
        ct, st = math.cos(theta), math.sin(theta)
        w0, w1, w2 = r0 / theta, r1 / theta, r2 / theta
        tmp = (w0 * x0 + w1 * x1 + w2 * x2) * (1.0 - ct)
        y0 = x0 * ct + (w1 * x2 - w2 * x1) * st + w0 * tmp
        y1 = x1 * ct + (w2 * x0 - w0 * x2) * st + w1 * tmp
        y2 = x2 * ct + (w0 * x1 - w1 * x0) * st + w2 * tmp
    else:
        y0 = x0 + (r1 * x2 - r2 * x1)
        y1 = x1 + (r2 * x0 - r0 * x2)
        y2 = x2 + (r0 * x1 - r1 * x0)
    u, v = y0 / y2, y1 / y2
    rsq = u * u + v * v
    L = 1.0 + cams[c, 9] * rsq + cams[c, 10] * rsq * rsq
    proj = (u if k == 0 else v) * L * cams[c, 6] + cams[c, 7 + k]
    return w[i] * (proj - feats[i, k])


def read_ba(path):
    with open(path) as fh:
        tok = fh.read().split()
    n, m, p = (int(t) for t in tok[:3])
    vals = [float(t) for t in tok[3:3 + 11 + 3 + 1 + 2]]
    cams = np.tile(vals[:11], (n, 1))
    X = np.tile(vals[11:14], (m, 1))
    w = np.full(p, vals[14])
    feats = np.tile(vals[15:17], (p, 1))
    obs = np.array([[i % n, i % m] for i in range(p)], dtype=np.int64)
    return cams, X, w, feats, obs


def test_bundle_adjustment_jacobian_matches_adbench():
    with open(os.path.join(ADBENCH, "adbench_expected.json")) as fh:
        expected = json.load(fh)["ba_test"]
    cams, X, w, feats, obs = read_ba(os.path.join(ADBENCH, "ba", "test.txt"))
    f = lldiff.jit(ba_residual)
    grad = lldiff.grad(f, argnums=(0, 1, 2))
    errs, vals = [], []
    for i in range(len(w)):
        for k in (0, 1):
            errs.append(f(cams, X, w, feats, obs, i, k))
            gc, gX, gw = grad(cams, X, w, feats, obs, i, k)
            vals += list(gc[obs[i, 0]]) + list(gX[obs[i, 1]]) + [gw[i]]
            # nothing else depends on this observation's parameters
            assert np.count_nonzero(gc) <= 11 and np.count_nonzero(gX) <= 3
    vals += [-2.0 * wi for wi in w]  # d (1 - w_i^2) / d w_i
    np.testing.assert_allclose(errs, expected["reproj_err"], rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(vals, expected["J_vals"], rtol=1e-8, atol=1e-8)
