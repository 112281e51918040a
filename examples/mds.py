#!/usr/bin/env python
"""Multidimensional scaling by gradient descent (seeds 003): recover N points in R^d from
their pairwise squared distances D by minimizing

    L(W) = sum_{i,j} (||W_i - W_j||^2 - D_ij)^2    (W: N x d, D: N x N)

with the gradient from lldiff's reverse mode through the double loop over pairs.

    python examples/mds.py
"""

import numpy as np

import lldiff


def stress(W, D, d):
    n = len(D)
    total = 0.0
    for i in range(n):
        for j in range(n):
            sq = 0.0
            for k in range(d):
                diff = W[i, k] - W[j, k]
                sq += diff * diff
            r = sq - D[i, j]
            total += r * r
    return total


def squared_distances(X):
    return ((X[:, None, :] - X[None, :, :]) ** 2).sum(axis=-1)


def fit(D, d=2, steps=3000, lr=None, seed=0):
    """Gradient descent with backtracking from a random start; (W, stress history)."""
    rng = np.random.default_rng(seed)
    n = D.shape[0]
    W = rng.normal(scale=np.sqrt(D.mean() / (2 * d)), size=(n, d))
    loss_and_grad = lldiff.value_and_grad(stress)
    stress_jit = lldiff.jit(stress)
    lr = lr or 1e-3 / max(1.0, D.mean())
    history = []
    for _ in range(steps):
        loss, g = loss_and_grad(W, D, d)
        history.append(loss)
        while True:  # backtracking: halve the step until the stress goes down
            trial = W - lr * g
            if stress_jit(trial, D, d) < loss or lr < 1e-16:
                break
            lr *= 0.5
        W = trial
        lr *= 1.2
    return W, history


def main():
    rng = np.random.default_rng(1)
    X = rng.uniform(-1.0, 1.0, size=(12, 2))
    D = squared_distances(X)
    W, history = fit(D)
    err = np.abs(squared_distances(W) - D).max()
    print(f"stress {history[0]:.3e} -> {history[-1]:.3e} in {len(history)} steps; "
          f"max |D(W) - D| = {err:.2e}")
    return X, D, W, history


if __name__ == "__main__":
    main()
