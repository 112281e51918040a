#!/usr/bin/env python
"""scipy.optimize.minimize with lldiff's gradient and Hessian: a least-squares model fit.

Model y(t) = a e^{-b t} + c, fitted to samples of it at 40 points, by Newton's method with a
trust region (method="trust-exact", which uses the exact Hessian):

    f = lldiff.jit(sse)
    minimize(f, p0, args=(t, y), jac=lldiff.grad(f), hess=lldiff.hessian(f))

SciPy passes its parameter vector as a numpy array and the data through `args`; the
gradient and the Hessian are w.r.t. the first argument (argnums=0). The samples are exact, so
the optimum is the true (a, b, c) with zero residual.

    python examples/scipy_fit.py
"""

import math

import numpy as np

import lldiff


def sse(p, t, y):
    total = 0.0
    for i in range(len(t)):
        r = p[0] * math.exp(-p[1] * t[i]) + p[2] - y[i]
        total += r * r
    return total


def fit(t, y, p0=(1.0, 1.0, 0.0)):
    from scipy.optimize import minimize
    f = lldiff.jit(sse)
    return minimize(f, np.array(p0), args=(t, y), jac=lldiff.grad(f), hess=lldiff.hessian(f),
                    method="trust-exact", options={"gtol": 1e-12})


def main():
    truth = np.array([2.5, 0.7, -0.3])
    t = np.linspace(0.0, 6.0, 40)
    y = truth[0] * np.exp(-truth[1] * t) + truth[2]
    result = fit(t, y)
    print(f"fitted {result.x} (true {truth}); sse {result.fun:.2e}; {result.nit} iterations, "
          f"{result.nfev} values, {result.njev} gradients, {result.nhev} Hessians")
    return truth, result


if __name__ == "__main__":
    main()
