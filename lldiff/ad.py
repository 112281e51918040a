"""The differentiation API with JAX's names and semantics: `jvp`, `jacfwd`.

Owns argument handling only (tuples of primals and tangents, `argnums`, which arguments are
differentiable, the shape of what is returned); the derivative code itself is IR built by
`lldiff.passes` and compiled by the dispatcher (`Dispatcher._derived`). Must not build IR.

Differentiable arguments and results are the float ones. An int or bool argument has no
tangent: pass None or 0 for it (JAX's float0). An int or bool result's tangent is None.
"""

import numbers
import weakref

from .api import Dispatcher, jit

__all__ = ["jvp", "jacfwd"]

_auto = weakref.WeakKeyDictionary()  # plain Python function -> its jit dispatcher


def _dispatcher(f, who):
    if isinstance(f, Dispatcher):
        return f
    if callable(f) and hasattr(f, "__code__"):
        d = _auto.get(f)
        if d is None:
            d = _auto[f] = jit(f)
        return d
    raise TypeError(f"lldiff.{who} expects a function or an lldiff.jit function, "
                    f"got {type(f).__name__}")


def _real(x):
    return isinstance(x, numbers.Real) or hasattr(x, "dtype") and getattr(x, "ndim", 1) == 0 \
        and x.dtype.kind in "fiub"


def _split(out, result_types, width):
    """Native results (y..., W tangents per float y) -> (y, [[W tangents] or None per y])."""
    n = len(result_types)
    if n == 0:
        return None, []
    flat = list(out) if isinstance(out, tuple) else [out]
    ys, rest = flat[:n], iter(flat[n:])
    dys = [[next(rest) for _ in range(width)] if t.is_float else None for t in result_types]
    return (ys[0] if n == 1 else tuple(ys)), dys


def jvp(f, primals, tangents):
    """Forward mode: `(f(*primals), J_f(primals) · tangents)` in one native sweep.

    `primals` and `tangents` are tuples (or lists) of the same length. A float argument's
    tangent is a number (None means zero and compiles a function that does not differentiate
    that argument); an int or bool argument's tangent must be None or 0.
    """
    d = _dispatcher(f, "jvp")
    if type(primals) is tuple and type(tangents) is tuple:
        plan = d._plans.get(tuple(map(type, primals + (None,) + tangents)))
        if plan is not None:
            out = plan(primals, tangents)
            if out is not _SLOW:
                return out
    return _jvp(d, primals, tangents)


_SLOW = object()
_SCALARS = (float, int, bool)


def _jvp(d, primals, tangents):
    for what, v in (("primals", primals), ("tangents", tangents)):
        if not isinstance(v, (tuple, list)):
            raise TypeError(f"lldiff.jvp: {what} must be a tuple or list of arguments, "
                            f"got {type(v).__name__}")
    if len(primals) != len(tangents):
        raise ValueError(f"lldiff.jvp: {len(primals)} primals but {len(tangents)} tangents; "
                         "give one tangent per argument")
    values = d._bind(tuple(primals), {})
    types = tuple(d._arg_type(name, v) for name, v in values)
    mask, dx = [], []
    for i, ((name, v), t) in enumerate(zip(values, types)):
        dt = tangents[i] if i < len(tangents) else None
        if t.is_float:
            if dt is not None and not _real(dt):
                raise TypeError(f"lldiff.jvp: tangent for argument '{name}' must be a real "
                                f"number, got {type(dt).__name__}")
            mask.append(dt is not None)
            if dt is not None:
                dx.append(float(dt))
        else:
            if dt is not None and not (_real(dt) and dt == 0):
                raise TypeError(f"lldiff.jvp: argument '{name}' is {_kind(v)}, which is not "
                                f"differentiable; its tangent must be None or 0, got {dt!r}")
            mask.append(False)
    spec = d._derived(types, "jvp", mask)
    finish = _jvp_finisher(d._ir(types).func.result_types)
    if len(values) == len(primals) and all(type(v) in _SCALARS for v in primals):
        _add_jvp_plan(d, primals, tangents, spec.entry, mask, finish)
    return finish(spec.entry(*[_canonical(v) for _, v in values], *dx))


def _jvp_finisher(result_types):
    """native results (y..., dy per float y) -> (y, dy) shaped like f's result."""
    n = len(result_types)
    floats = [t.is_float for t in result_types]

    def finish(out):
        y, dys = _split(out, result_types, 1)
        if n == 0:
            return y, None
        dy = [None if t is None else t[0] for t in dys]
        return y, (dy[0] if n == 1 else tuple(dy))
    if n == 1 and floats[0]:
        return lambda out: out  # (y, dy) already
    return finish


def _add_jvp_plan(d, primals, tangents, entry, mask, finish):
    """Cache the checks this call passed, keyed by argument types and which tangents are None,
    so the next such call only converts tangents and calls the native code."""
    active = [i for i, on in enumerate(mask) if on]
    zeros = [i for i, t in enumerate(tangents) if t is not None and not mask[i]]

    def plan(primals, tangents):
        for i in zeros:
            if tangents[i] != 0:
                return _SLOW
        dx = []
        for i in active:
            t = tangents[i]
            if type(t) is not float and type(t) is not int:
                return _SLOW
            dx.append(float(t))
        return finish(entry(*primals, *dx))
    # None separates primal from tangent types: a planned primal is never None
    d._plans[tuple(map(type, tuple(primals) + (None,) + tuple(tangents)))] = plan


def jacfwd(f, argnums=0):
    """The Jacobian of `f` by forward mode, all `argnums` columns in one vector-mode sweep.

    Returns a function of the same arguments. With an int `argnums`, its value is d out/d x
    (a tuple over outputs for a tuple-valued f); with a tuple of argnums, a tuple over argnums
    (a tuple of such tuples for a tuple-valued f), as `jax.jacfwd`.
    """
    d = _dispatcher(f, "jacfwd")
    nums, single = _argnums(argnums, "jacfwd")

    def jac(*args, **kwargs):
        values = d._bind(args, kwargs)
        types = tuple(d._arg_type(name, v) for name, v in values)
        for k in nums:
            if k >= len(values):
                raise ValueError(f"lldiff.jacfwd: argnums {k} is out of range for "
                                 f"{d.__name__} with {len(values)} arguments")
            name, v = values[k]
            if not types[k].is_float:
                raise TypeError(f"lldiff.jacfwd: argument '{name}' (argnums {k}) is "
                                f"{_kind(v)}; only float arguments can be differentiated")
        width = len(nums)
        mask = [i in nums for i in range(len(values))]
        seeds = [1.0 if nums[w] == i else 0.0
                 for i in range(len(values)) if mask[i] for w in range(width)]
        spec = d._derived(types, "jvp", mask, width)
        out = spec.entry(*[_canonical(v) for _, v in values], *seeds)
        _, dys = _split(out, d._ir(types).func.result_types, width)
        cols = [None if t is None else (t[0] if single else tuple(t)) for t in dys]
        if not cols:
            return None
        return cols[0] if len(cols) == 1 else tuple(cols)

    jac.__name__ = f"jacfwd({d.__name__})"
    jac.__qualname__ = jac.__name__
    jac.__doc__ = f"Jacobian of {d.__name__} w.r.t. argnums={argnums!r} by forward mode."
    return jac


def _argnums(argnums, who):
    single = isinstance(argnums, int) and not isinstance(argnums, bool)
    nums = (argnums,) if single else argnums
    if not isinstance(nums, (tuple, list)) or not nums or not all(
            isinstance(k, int) and not isinstance(k, bool) and k >= 0 for k in nums):
        raise TypeError(f"lldiff.{who}: argnums must be a non-negative int or a non-empty "
                        f"tuple of them, got {argnums!r}")
    if len(set(nums)) != len(nums):
        raise ValueError(f"lldiff.{who}: argnums has repeated entries: {argnums!r}")
    return tuple(nums), single


def _kind(v):
    return "a bool" if isinstance(v, bool) or type(v).__name__ == "bool_" else "an int"


def _canonical(v):
    if type(v) in (float, int, bool):
        return v
    return v.item() if hasattr(v, "item") else v
