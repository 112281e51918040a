#!/usr/bin/env python
"""Hessian trace by Hutchinson's estimator (seeds 003) with lldiff's Hessian-vector products.

For f(w) = sum_i log cosh(c_i w_i) + (sum_i w_i)^2 / 2, the Hessian is
diag(c_i^2 / cosh^2(c_i w_i)) + (all ones), so Tr H = sum_i c_i^2 / cosh^2(c_i w_i) + n in
closed form. Hutchinson: Tr H = E[v^T H v] for random v with E[v v^T] = I (Rademacher
entries here); each sample is one lldiff.hvp (forward over reverse: no Hessian is formed).

    python examples/hutchinson.py
"""

import math

import numpy as np

import lldiff


def f(w, c):
    s = 0.0
    total = 0.0
    for i in range(len(w)):
        total += math.log(math.cosh(c[i] * w[i]))
        s += w[i]
    return total + 0.5 * s * s


def exact_trace(w, c):
    return float(np.sum(c ** 2 / np.cosh(c * w) ** 2) + len(w))


def estimate(w, c, samples, seed=0):
    """(running mean of v^T H v over `samples` Rademacher vectors, the samples)."""
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(samples):
        v = rng.choice([-1.0, 1.0], size=len(w))
        hv = lldiff.hvp(f, (w, c), (v, None))  # c is data: no tangent, not differentiated
        values.append(float(v @ hv))
    values = np.array(values)
    return values.mean(), values


def main():
    rng = np.random.default_rng(3)
    n = 50
    w, c = rng.normal(size=n), rng.uniform(0.5, 2.0, size=n)
    est, samples = estimate(w, c, 2000)
    exact = exact_trace(w, c)
    stderr = samples.std(ddof=1) / math.sqrt(len(samples))
    print(f"Hutchinson: {est:.4f} +- {stderr:.4f} ({len(samples)} HVPs); exact {exact:.4f}")
    return est, stderr, exact


if __name__ == "__main__":
    main()
