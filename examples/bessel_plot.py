#!/usr/bin/env python
"""The seed's Bessel functions J_0 ... J_5 and their derivatives on [0, 10], as in the
lecture notes (seeds 004): the poor man's series, its derivative by lldiff's reverse mode
mapped over the grid (lldiff.vectorize(lldiff.grad(...))), plotted with matplotlib.

    python examples/bessel_plot.py [out.png]      (default: examples/bessel.png)
"""

import math
import os
import sys

import numpy as np

import lldiff


def besselj(v, z):
    k = 0
    s = (z / 2) ** v / math.factorial(v)
    out = s
    while abs(s) > 2.220446049250313e-16:
        k += 1
        s *= -1 / k / (k + v) * (z / 2) ** 2
        out += s
    return out


def curves(orders=range(6), n=501):
    """x, {v: (J_v(x), dJ_v/dx(x))} on [0, 10]."""
    x = np.linspace(0.0, 10.0, n)
    values_and_slopes = lldiff.vectorize(lldiff.value_and_grad(besselj, 1))
    return x, {v: values_and_slopes(v, x) for v in orders}


def plot(path, x, data):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    for v, (y, g) in data.items():
        color = f"C{v}"
        ax.plot(x, y, color=color, lw=2, label=f"$J_{v}$")
        ax.plot(x, g, color=color, lw=1.5, ls="--", label=f"$J_{v}'$")
    ax.axhline(0.0, color="0.7", lw=0.8)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title("$J_v$ (solid) and $dJ_v/dx$ by lldiff's reverse mode (dashed)")
    ax.legend(ncol=6, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.12))
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    path = argv[0] if argv else os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                             "bessel.png")
    x, data = curves()
    plot(path, x, data)
    print(f"wrote {path}")
    return x, data


if __name__ == "__main__":
    main()
