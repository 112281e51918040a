"""lldiff: compile scalar numerical Python to native code and differentiate it.

The public API is small and lazy: importing lldiff loads neither llvmlite.binding nor numpy;
the compiler is loaded on the first compile.
"""

from .errors import CompileError, LLDiffError

__version__ = "0.1.0"
__all__ = ["jit", "jit_grad", "jvp", "jacfwd", "grad", "value_and_grad", "vjp", "jacrev",
           "hessian", "hvp", "jet", "custom_jvp", "custom_vjp", "vectorize", "DeviceArray",
           "CompileError", "LLDiffError", "__version__"]


def __getattr__(name):
    if name in ("jit", "jit_grad"):
        from . import api
        value = getattr(api, name)
    elif name in ("jvp", "jacfwd", "grad", "value_and_grad", "vjp", "jacrev", "hessian",
                  "hvp", "jet"):
        from . import ad
        value = getattr(ad, name)
    elif name in ("custom_jvp", "custom_vjp"):
        from . import custom
        value = getattr(custom, name)
    elif name == "vectorize":
        from .batch import vectorize as value
    elif name == "DeviceArray":  # what GPU maps return for arguments on the device
        from .runtime.cudadrv import DeviceArray as value
    else:
        raise AttributeError(f"module 'lldiff' has no attribute {name!r}")
    globals()[name] = value  # later lookups skip this hook
    return value
