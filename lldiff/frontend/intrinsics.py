"""The functions and constants lldiff functions may call: builtins, `math` and scalar numpy.

Maps a resolved Python object (e.g. `math.sin`, `np.sqrt`, `abs`) to a lowering recipe. Owns
which library names are supported; the lowering itself lives in `lower.py`.
"""

import builtins
import math

__all__ = ["MATH_UNARY", "MATH_BINARY", "MATH_TESTS", "MATH_TO_INT", "NP_NAMES",
           "MATH_CONSTANTS", "BUILTINS", "lookup"]

# Python name -> IR op, for float functions of one argument (math and numpy spell some apart).
MATH_UNARY = {
    "sin": "math.sin", "cos": "math.cos", "tan": "math.tan", "asin": "math.asin",
    "acos": "math.acos", "atan": "math.atan", "sinh": "math.sinh", "cosh": "math.cosh",
    "tanh": "math.tanh", "asinh": "math.asinh", "acosh": "math.acosh", "atanh": "math.atanh",
    "exp": "math.exp", "expm1": "math.expm1", "exp2": "math.exp2", "log2": "math.log2",
    "log10": "math.log10", "log1p": "math.log1p", "sqrt": "math.sqrt", "cbrt": "math.cbrt",
    "erf": "math.erf", "erfc": "math.erfc", "lgamma": "lldiff.lgamma", "gamma": "lldiff.tgamma",
    "fabs": "math.absf",
}
MATH_BINARY = {"atan2": "math.atan2", "hypot": "lldiff.hypot", "pow": "math.powf",
               "copysign": "math.copysign", "fmod": "arith.remf"}
MATH_TESTS = {"isnan": "math.isnan", "isinf": "math.isinf", "isfinite": "math.isfinite"}
# math.floor/ceil/trunc return int in Python.
MATH_TO_INT = {"floor": "math.floor", "ceil": "math.ceil", "trunc": "math.trunc"}
MATH_CONSTANTS = {"pi": math.pi, "e": math.e, "tau": math.tau, "inf": math.inf, "nan": math.nan}

# numpy scalar functions: name -> (kind, op). Float results throughout (np.floor(x) is a float).
NP_NAMES = {
    **{k: ("unary", v) for k, v in MATH_UNARY.items()
       if k not in ("asin", "acos", "atan", "asinh", "acosh", "atanh", "lgamma", "gamma", "erf",
                    "erfc")},
    "arcsin": ("unary", "math.asin"), "arccos": ("unary", "math.acos"),
    "arctan": ("unary", "math.atan"), "arcsinh": ("unary", "math.asinh"),
    "arccosh": ("unary", "math.acosh"), "arctanh": ("unary", "math.atanh"),
    "log": ("unary", "math.log"), "abs": ("unary", "math.absf"),
    "absolute": ("unary", "math.absf"), "floor": ("unary", "math.floor"),
    "ceil": ("unary", "math.ceil"), "trunc": ("unary", "math.trunc"),
    "rint": ("unary", "math.roundeven"), "round": ("unary", "math.roundeven"),
    "square": ("square", None), "sign": ("sign", None),
    "arctan2": ("binary", "math.atan2"), "hypot": ("binary", "lldiff.hypot"),
    "power": ("binary", "math.powf"), "copysign": ("binary", "math.copysign"),
    "fmod": ("binary", "arith.remf"), "maximum": ("npmax", None), "minimum": ("npmin", None),
    "isnan": ("test", "math.isnan"), "isinf": ("test", "math.isinf"),
    "isfinite": ("test", "math.isfinite"),
    "zeros": ("alloc", 0.0), "ones": ("alloc", 1.0), "empty": ("alloc", None),
}
NP_CONSTANTS = {"pi": math.pi, "e": math.e, "inf": math.inf, "nan": math.nan}

BUILTINS = {builtins.abs: "abs", builtins.min: "min", builtins.max: "max",
            builtins.float: "float", builtins.int: "int", builtins.round: "round",
            builtins.bool: "bool", builtins.range: "range", builtins.len: "len",
            builtins.print: "print"}


def lookup(obj):
    """Classify a resolved global: ('math', name), ('np', name), ('builtin', name) or None."""
    mod = getattr(obj, "__module__", None)
    name = getattr(obj, "__name__", None)
    try:
        if obj in BUILTINS:
            return ("builtin", BUILTINS[obj])
    except TypeError:
        return None
    if mod == "math" and getattr(math, name or "", None) is obj:
        return ("math", name)
    np = _numpy()
    if np is not None and name and getattr(np, name, None) is obj and name in NP_NAMES:
        return ("np", name)
    return None


def _numpy():
    import sys
    return sys.modules.get("numpy")
