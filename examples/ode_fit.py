#!/usr/bin/env python
"""Fitting ODE parameters by reverse mode through an RK4 loop.

Logistic growth y' = r y (1 - y / K), y(0) = y0, observed at t = 1, 2, ..., 10. The loss
integrates the ODE with classic RK4 (20 steps per unit of time) and sums the squared misfits
to the observations; lldiff.value_and_grad differentiates the whole loop in one reverse
sweep, and scipy's L-BFGS-B, given that gradient, fits (r, K). The data
come from the exact solution y(t) = K / (1 + (K / y0 - 1) e^{-r t}), so the fit must recover
the true (r, K).

    python examples/ode_fit.py
"""

import math

import numpy as np

import lldiff

STEPS_PER_UNIT = 20


def loss(r, K, y0, observed):
    h = 1.0 / STEPS_PER_UNIT
    y = y0
    total = 0.0
    for j in range(len(observed)):
        for s in range(STEPS_PER_UNIT):
            k1 = r * y * (1.0 - y / K)
            y2 = y + 0.5 * h * k1
            k2 = r * y2 * (1.0 - y2 / K)
            y3 = y + 0.5 * h * k2
            k3 = r * y3 * (1.0 - y3 / K)
            y4 = y + h * k3
            k4 = r * y4 * (1.0 - y4 / K)
            y = y + h / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
        e = y - observed[j]
        total += e * e
    return total


def exact(t, r, K, y0):
    return K / (1.0 + (K / y0 - 1.0) * math.exp(-r * t))


def fit(observed, y0, start=(0.3, 5.0)):
    from scipy.optimize import minimize
    value_and_grad = lldiff.value_and_grad(loss, (0, 1))

    def objective(p):
        v, (dr, dK) = value_and_grad(float(p[0]), float(p[1]), y0, observed)
        return v, np.array([dr, dK])

    return minimize(objective, np.array(start), jac=True, method="L-BFGS-B",
                    bounds=[(1e-3, 10.0), (1e-1, 100.0)], options={"ftol": 1e-15, "gtol": 1e-12})


def main():
    r_true, K_true, y0 = 0.8, 12.0, 0.5
    observed = np.array([exact(t, r_true, K_true, y0) for t in range(1, 11)])
    result = fit(observed, y0)
    r, K = result.x
    print(f"fitted r = {r:.8f} (true {r_true}), K = {K:.8f} (true {K_true}); "
          f"loss {result.fun:.2e} after {result.nit} iterations")
    return (r_true, K_true), result


if __name__ == "__main__":
    main()
