"""The differentiation API with JAX's names and semantics: `jvp`, `jacfwd`, `grad`,
`value_and_grad`, `vjp`, `jacrev`.

Owns argument handling only (tuples of primals and tangents, `argnums`, which arguments are
differentiable, the shape of what is returned); the derivative code itself is IR built by
`lldiff.passes` and compiled by the dispatcher (`Dispatcher._derived`). Must not build IR.

Differentiable arguments and results are the float ones. An int or bool argument has no
tangent: pass None or 0 for it (JAX's float0). An int or bool result's tangent is None.
"""

import functools
import math
import numbers
import weakref

from .api import Dispatcher, _arrays_ok, _check_arrays, _numpy, _plan_key, jit
from .pickling import transformed

__all__ = ["jvp", "jacfwd", "grad", "value_and_grad", "vjp", "jacrev", "hessian", "hvp",
           "jet"]

_auto = weakref.WeakKeyDictionary()  # plain Python function -> its jit dispatcher


def _transformation(transform):
    """Make the functions `transform` returns `pickling.Transformed`: picklable as
    (transformation, f, arguments), and typed by numba (numba_ext.py)."""
    name = transform.__name__

    @functools.wraps(transform)
    def public(f, *args, **kwargs):
        fn = transform(f, *args, **kwargs)
        # a plain function is recorded as the lldiff.jit function made of it, which pickles
        # by source where pickle cannot find the function by name
        return transformed(fn, name, _auto.get(f, f) if hasattr(f, "__code__") else f, args,
                           kwargs)
    return public


def _dispatcher(f, who):
    if isinstance(f, Dispatcher):
        return f
    if getattr(f, "_lldiff_checkpoints", None) is not None:
        raise NotImplementedError(
            f"lldiff.{who} of a gradient taken with checkpoints= is not supported yet: "
            "transform the gradient without checkpoints (the same values, more tape memory)")
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


def _differentiable(t):
    return t.is_float or t.is_memref and t.elem.is_float


def _split(out, result_types, width):
    """Native results (y..., W tangents per float y) -> (y, [[W tangents] or None per y])."""
    n = len(result_types)
    if n == 0:
        return None, []
    flat = list(out) if isinstance(out, tuple) else [out]
    ys, rest = flat[:n], iter(flat[n:])
    dys = [[next(rest) for _ in range(width)] if _differentiable(t) else None
           for t in result_types]
    return (ys[0] if n == 1 else tuple(ys)), dys


def jvp(f, primals, tangents):
    """Forward mode: `(f(*primals), J_f(primals) · tangents)` in one native sweep.

    `primals` and `tangents` are tuples (or lists) of the same length. A float argument's
    tangent is a number (None means zero and compiles a function that does not differentiate
    that argument); an int or bool argument's tangent must be None or 0.
    """
    d = f if isinstance(f, Dispatcher) else None
    if d is None:
        if getattr(f, "_lldiff_grad", None) is not None:
            return _jvp_of_grad(f._lldiff_grad, primals, tangents)
        d = _dispatcher(f, "jvp")
    if type(primals) is tuple and type(tangents) is tuple:
        # _add_jvp_plan's key; spelled out for one and two arguments, where the generic
        # tuple(map(...)) costs more than the rest of the call (~0.5 us)
        n = len(primals)
        if n == 2 and len(tangents) == 2:
            key = (type(primals[0]), type(primals[1]), _NONE, type(tangents[0]),
                   type(tangents[1]))
        elif n == 1 and len(tangents) == 1:
            key = (type(primals[0]), _NONE, type(tangents[0]))
        else:
            key = tuple(map(type, primals + (None,) + tangents))
        plan = d._plans.get(key)
        if plan is not None:
            if type(plan) is tuple:  # one float tangent, (y, dy) as the entry returns them
                k, entry = plan
                t = tangents[k]
                if type(t) is float:
                    return entry(*primals, t)
            else:
                out = plan(primals, tangents)
                if out is not _SLOW:
                    return out
    return _jvp(d, primals, tangents)


def _jvp_of_grad(gr, primals, tangents):
    """jvp(grad(f)) and jvp(value_and_grad(f)): forward over reverse in one native call."""
    d, nums, single, has_aux, value = gr
    if has_aux:
        raise NotImplementedError("lldiff.jvp of a gradient with has_aux=True is not "
                                  "supported yet")
    _check_pair("jvp", primals, tangents)
    y, g, dy, dg = _grad_jvp(d, "jvp", nums, primals, tangents)
    out = g[nums[0]] if single else tuple(g[k] for k in nums)
    dout = dg[nums[0]] if single else tuple(dg[k] for k in nums)
    return ((y, out), (dy, dout)) if value else (out, dout)


def _derivative_of_grad(g, argnums, who, has_aux):
    """grad(grad(h, i), js) and jacfwd(grad(h, nums), js): second derivatives of h w.r.t.
    float arguments, one forward-over-reverse sweep per argnum j (the jvp of the gradient
    along the unit tangent of argument j)."""
    d, inums, isingle, iaux, ivalue = g._lldiff_grad
    nums, single = _argnums(argnums, who)
    if has_aux or iaux or ivalue:
        raise NotImplementedError(f"lldiff.{who} of value_and_grad or of a gradient with "
                                  "has_aux is not supported yet")
    if who == "grad" and not isingle:
        raise TypeError("lldiff.grad of a gradient needs a gradient w.r.t. one argument "
                        "(a number); use lldiff.jacfwd or lldiff.hessian for several")

    def second(*args, **kwargs):
        if kwargs:
            raise TypeError(f"lldiff.{who} of a gradient takes positional arguments only")
        cols = []
        for j in nums:
            tangents = [None] * len(args)
            tangents[j] = 1.0
            cols.append(_grad_jvp(d, who, inums, args, tangents)[3])
        rows = []
        for i in inums:
            if not isinstance(cols[0][i], float):
                raise NotImplementedError(f"lldiff.{who} of a gradient w.r.t. an array is not "
                                          "supported yet; use lldiff.hessian")
            row = [c[i] for c in cols]
            rows.append(row[0] if single else tuple(row))
        return rows[0] if isingle else tuple(rows)

    second.__name__ = f"{who}({g.__name__})"
    second.__qualname__ = second.__name__
    return second


_SLOW = object()
_NONE = type(None)  # the separator in jvp plan keys (the type of the None between the parts)
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
        if t.is_memref and t.elem.is_float:
            mask.append(dt is not None)
            if dt is not None:
                np = _np()
                if np.shape(dt) != v.shape:
                    raise ValueError(f"lldiff.jvp: tangent for argument '{name}' has shape "
                                     f"{np.shape(dt)}, the argument {v.shape}")
                # a copy: the jvp writes into the tangents of arrays the function writes
                dx.append(np.array(dt, dtype=v.dtype, order="C", copy=True))
        elif t.is_memref:
            if dt is not None:
                raise TypeError(f"lldiff.jvp: argument '{name}' is an array of {v.dtype}, "
                                "which is not differentiable; its tangent must be None")
            mask.append(False)
        elif t.is_float:
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
    _check_arrays(d.__name__, values, spec.func.attrs.get("writes", ()))
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
        return _as_is  # (y, dy) already
    return finish


def _as_is(out):
    return out


def _add_jvp_plan(d, primals, tangents, entry, mask, finish):
    """Cache the checks this call passed, keyed by argument types and which tangents are None,
    so the next such call only converts tangents and calls the native code."""
    active = [i for i, on in enumerate(mask) if on]
    zeros = [i for i, t in enumerate(tangents) if t is not None and not mask[i]]
    # None separates primal from tangent types: a planned primal is never None
    key = tuple(map(type, tuple(primals) + (None,) + tuple(tangents)))
    if len(active) == 1 and not zeros and finish is _as_is:
        # the common case, run by jvp itself: one tangent, (y, dy) as the entry returns
        # them; a tangent that is not a float (an int) takes the slow path
        d._plans[key] = (active[0], entry)
        return

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
    d._plans[key] = plan


_JACFWD_WIDTH = 16  # directions per vector-mode sweep for array arguments


@_transformation
def jacfwd(f, argnums=0):
    """The Jacobian of `f` by forward mode, the `argnums` columns in vector-mode sweeps.

    Returns a function of the same arguments. With an int `argnums`, its value is d out/d x
    (a tuple over outputs for a tuple-valued f); with a tuple of argnums, a tuple over argnums
    (a tuple of such tuples for a tuple-valued f), as `jax.jacfwd`. Scalar arguments take one
    sweep carrying a direction each; an array argument adds one direction per element, in
    sweeps of at most 16 directions. For an array output of shape S and an array argument of
    shape A the block has shape S + A.
    """
    if getattr(f, "_lldiff_grad", None) is not None:
        return _derivative_of_grad(f, argnums, "jacfwd", False)
    d = _dispatcher(f, "jacfwd")
    nums, single = _argnums(argnums, "jacfwd")
    plans = {}  # numbers only: _plan_key -> a call repeating the one sweep

    def jac(*args, **kwargs):
        if plans and not kwargs:  # (keys of numbers alone: their types, as _plan_key's;
            n = len(args)  # spelled out for one or two: tuple(map(...)) costs ~0.3 us)
            plan = plans.get((type(args[0]),) if n == 1 else (type(args[0]), type(args[1]))
                             if n == 2 else tuple(map(type, args)))
            if plan is not None:
                return plan(args)
        key = None if kwargs else _plan_key(args)
        values = d._bind(args, kwargs)
        types = tuple(d._arg_type(name, v) for name, v in values)
        _check_argnums(d, "jacfwd", values, types, nums)
        rtypes = d._ir(types).func.result_types
        mask = [i in nums for i in range(len(values))]
        saved = [_canonical(v) for _, v in values]
        dirs = _directions(nums, types, saved)
        chunk = len(dirs) if not any(types[i].is_memref for i in nums) else _JACFWD_WIDTH
        cols = [[] for _ in rtypes]  # per result: one tangent per direction
        for start in range(0, len(dirs), chunk):
            part = dirs[start:start + chunk]
            width = len(part)
            tangents = _unit_tangents(mask, types, saved, part)
            spec = d._derived(types, "jvp", mask, width)
            _check_arrays(d.__name__, values, spec.func.attrs.get("writes", ()))
            if key is not None and len(dirs) == width and len(args) == len(values) and \
                    not any(t.is_memref for t in types):
                plans[key] = _jacfwd_plan(spec.entry, tangents, rtypes, width, single)
            out = spec.entry(*_fresh(saved, types), *tangents)
            _, dys = _split(out, rtypes, width)
            for k, t in enumerate(dys):
                if t is not None:
                    cols[k] += t
        blocks = [_blocks(cols[k], nums, types, saved, single) if _differentiable(t) else None
                  for k, t in enumerate(rtypes)]
        if not blocks:
            return None
        return blocks[0] if len(blocks) == 1 else tuple(blocks)

    jac.__name__ = f"jacfwd({d.__name__})"
    jac.__qualname__ = jac.__name__
    jac._lldiff_jacfwd = (d, nums, single)  # for lldiff.vectorize
    jac.__doc__ = f"Jacobian of {d.__name__} w.r.t. argnums={argnums!r} by forward mode."
    return jac


def _directions(nums, types, saved):
    """Forward-mode directions for the argnums: (argnum, None) for a number, (argnum,
    element index) for each element of an array, in argnums order."""
    dirs = []
    for i in nums:
        if types[i].is_memref:
            dirs += [(i, idx) for idx in _np().ndindex(saved[i].shape)]
        else:
            dirs.append((i, None))
    return dirs


def _unit_tangents(mask, types, saved, part):
    """The tangent arguments of a sweep along directions `part`: per masked argument (in
    argument order), one per direction -- 1 along the direction, 0 elsewhere."""
    tangents = []
    for i in range(len(types)):
        if not mask[i]:
            continue
        for j, idx in part:
            if types[i].is_memref:
                t = _np().zeros(saved[i].shape, saved[i].dtype)
                if j == i:
                    t[idx] = 1.0
                tangents.append(t)
            else:
                tangents.append(1.0 if j == i else 0.0)
    return tangents


def _blocks(cols, nums, types, saved, single):
    """One output's derivatives along every direction (`_directions` order) -> a block per
    argnum: a number for a number, shape out.shape + arg.shape for an array."""
    per_arg, pos = [], 0
    for i in nums:
        n = saved[i].size if types[i].is_memref else 1
        ts = cols[pos:pos + n]
        pos += n
        if types[i].is_memref:
            np = _np()
            block = np.stack([np.asarray(x, dtype=float) for x in ts], axis=-1)
            per_arg.append(block.reshape(np.shape(ts[0]) + saved[i].shape))
        else:
            per_arg.append(ts[0])
    return per_arg[0] if single else tuple(per_arg)


def _jacfwd_plan(entry, tangents, rtypes, width, single):
    """jacfwd's one sweep for arguments that are all numbers, without the checks."""
    if width == 1 and single and len(rtypes) == 1 and rtypes[0].is_float:
        (t,) = tangents  # the common case, kept short: the entry's (y, dy) -> dy
        return lambda args: entry(*args, t)[1]

    def plan(args):
        _, dys = _split(entry(*args, *tangents), rtypes, width)
        blocks = [None if t is None else t[0] if single else tuple(t) for t in dys]
        if not blocks:
            return None
        return blocks[0] if len(blocks) == 1 else tuple(blocks)
    return plan


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
    return v.item() if hasattr(v, "item") and getattr(v, "ndim", 0) == 0 else v


# --- reverse mode -------------------------------------------------------------------------

def _check_argnums(d, who, values, types, nums, arrays=True):
    for k in nums:
        if k >= len(values):
            raise ValueError(f"lldiff.{who}: argnums {k} is out of range for {d.__name__} "
                             f"with {len(values)} arguments")
        name, v = values[k]
        t = types[k]
        if t.is_memref and t.elem.is_float and arrays:
            continue
        if t.is_memref:
            what = f"an array of {v.dtype}" if t.elem.is_int else "an array"
            can = "float arguments and float arrays" if arrays else "float arguments"
            raise TypeError(f"lldiff.{who}: argument '{name}' (argnums {k}) is {what}; only "
                            f"{can} can be differentiated here")
        if not t.is_float:
            raise TypeError(f"lldiff.{who}: argument '{name}' (argnums {k}) is {_kind(v)}; "
                            "only float arguments can be differentiated")


def _fresh(values, types):
    """Copies of the array arguments (a function may write them; each sweep starts anew)."""
    return [v.copy() if t.is_memref else v for v, t in zip(values, types)]


def _np():
    import numpy
    return numpy


class _Direct(dict):
    """Argument types (`tuple(map(type, args))`) -> the native entry of a gradient with one
    differentiated argument and no aux, returning (value, gradient): for numbers, or arrays
    (the entry makes the gradient array itself, codegen/abi.py `py_alloc`). Their fallback,
    for arguments their own checks refuse (another dtype, rank or layout under the same
    types, an unaligned array...), is `slow`: the checked path, returning the same pair.

    `first`, the entry of the first argument types, is what every call tries (no type key to
    build); what it refuses goes to `dispatch`, which tries the entry of the call's types,
    then `slow`. `install(first)`, when set, is called once `first` exists (value_and_grad
    makes it the function's `__call__`: pickling.transformed)."""

    def __init__(self, d, who, nums, plans, checkpoints):
        super().__init__()
        self.first = None
        self.install = None

        def slow(*args, **kwargs):
            y, _, gs = _grad_call(d, who, nums, False, args, kwargs, plans, checkpoints)
            return y, gs[0]

        def dispatch(*args, **kwargs):
            if not kwargs:
                entry = self.get(tuple(map(type, args)))
                if entry is not None and entry is not self.first:
                    return entry(*args)  # (its fallback is slow: never back here)
            return slow(*args, **kwargs)
        self.slow = slow
        self.dispatch = dispatch

    def add(self, types, spec):
        """Keep the entry of `spec` (a _Specialization) for argument types `types`."""
        if types in self:
            return
        if self.first is None:
            self[types] = self.first = spec.rebound(self.dispatch)
            if self.install is not None:
                self.install(self.first)
        else:
            self[types] = spec.rebound(self.slow)


def _grad_call(d, who, nums, has_aux, args, kwargs, plans=None, checkpoints=None,
               direct=None):
    """One native reverse sweep: (value, aux or None, gradients in argnums order). `plans`
    (a dict) remembers, per `_plan_key`, a plan that repeats such a call without the checks
    it passed; `direct` (a `_Direct`), for calls with one gradient and one result, the native
    entry itself, keyed by the argument types (`_Direct`)."""
    if plans is not None and not kwargs:
        key = _plan_key(args)
        plan = plans.get(key)
        if plan is not None:
            out = plan(args)
            if out is not _SLOW:
                return out
    values = d._bind(args, kwargs)
    types = tuple(d._arg_type(name, v) for name, v in values)
    _check_argnums(d, who, values, types, nums)
    rtypes = d._ir(types).func.result_types
    if has_aux and len(rtypes) < 2:
        raise TypeError(f"lldiff.{who}: has_aux=True needs {d.__name__} to return "
                        "(value, aux)")
    if not rtypes or not rtypes[0].is_float or len(rtypes) > 1 and not has_aux:
        got = " and ".join(str(t) for t in rtypes) or "nothing"
        raise TypeError(f"lldiff.{who}: {d.__name__} must return one float (the value to "
                        f"differentiate){' and its aux' if has_aux else ''}; it returns {got}")
    mask = [i in nums for i in range(len(values))]
    seeded = [i == 0 for i in range(len(rtypes))]
    spec = d._derived(types, "grad", mask, seeded=seeded, checkpoints=checkpoints)
    writes = spec.func.attrs.get("writes", ())
    _check_arrays(d.__name__, values, writes)
    arrays = sorted(k for k in nums if types[k].is_memref)
    scalars = sorted(k for k in nums if not types[k].is_memref)
    n, entry = len(rtypes), spec.entry
    order = [scalars.index(k) for k in nums if k in scalars]

    def scalars_only(args):  # the common case, kept short: (value, g) or (value, (g...))
        out = entry(*args)
        g = out[1] if len(order) == 1 else [out[1][i] for i in order]
        return out[0], None, [g] if len(order) == 1 else g

    def call(args):
        np = _numpy()
        shadows = [np.zeros(args[k].shape, args[k].dtype) for k in arrays]
        out = entry(*args, *shadows)
        if not isinstance(out, tuple):
            out = (out,)
        by_arg = dict(zip(scalars, out[n] if len(scalars) > 1 else out[n:]))
        by_arg.update(zip(arrays, shadows))
        aux = None
        if has_aux:
            aux = out[1] if n == 2 else tuple(out[1:n])
        return out[0], aux, [by_arg[k] for k in nums]

    if plans is not None and not kwargs and len(args) == len(values):
        key = _plan_key(args)
        if key is not None:
            checked = [k for k, t in enumerate(types) if t.is_memref]

            def plan(args):
                if not _arrays_ok(args, checked, writes):
                    return _SLOW
                return call(args) if n > 1 or not arrays else allocating(args)

            srt = sorted(nums)
            pick = [srt.index(k) for k in nums]

            def allocating(args):  # the entry point makes the arrays' gradients itself
                # (codegen/abi.py `py_alloc`): (value, g) or (value, (g...)), argument order
                y, g = entry(*args)
                return y, None, [g] if len(pick) == 1 else [g[i] for i in pick]
            plans[key] = plan if checked else scalars_only if not arrays and n == 1 else call
            if direct is not None and n == 1 and len(nums) == 1:
                direct.add(tuple(map(type, args)), spec)
    return call([_canonical(v) for _, v in values])


@_transformation
def grad(f, argnums=0, has_aux=False, checkpoints=None):
    """The gradient of a float-valued `f` by reverse mode, as `jax.grad`.

    Returns a function of the same arguments whose value is df/dx for an int `argnums` and a
    tuple of them for a tuple; with `has_aux`, f returns (value, aux) and the function returns
    (gradient, aux). The value and the gradient come from one native call.

    `checkpoints=c` (an int >= 1) bounds the memory of f's long loops: each top-level loop
    that carries only numbers and writes no array keeps at most c snapshots of its state
    instead of a tape entry per iteration, and its reverse sweep recomputes iterations from
    them by binomial checkpointing (Griewank's revolve; passes/checkpoint.py).

    `f` may itself be `lldiff.grad(h, argnums=i)` of a float argument i (a scalar): the
    result is then a row of h's Hessian, by forward over reverse (one sweep per argnum).
    """
    checkpoints = _checkpoints(checkpoints, "grad")
    if getattr(f, "_lldiff_grad", None) is not None:
        if checkpoints is not None:
            raise ValueError("lldiff.grad: checkpoints= applies to first derivatives only")
        return _derivative_of_grad(f, argnums, "grad", has_aux)
    d = _dispatcher(f, "grad")
    nums, single = _argnums(argnums, "grad")

    plans = {}
    direct = _Direct(d, "grad", nums, plans, checkpoints) if single and not has_aux else None

    def g(*args, **kwargs):
        if direct is not None and direct.first is not None:  # the native call, no more
            return direct.first(*args, **kwargs)[1]
        _, aux, gs = _grad_call(d, "grad", nums, has_aux, args, kwargs, plans, checkpoints,
                                direct)
        out = gs[0] if single else tuple(gs)
        return (out, aux) if has_aux else out

    if checkpoints is None:
        g._lldiff_grad = (d, nums, single, has_aux, False)  # for lldiff.vectorize
    g._lldiff_checkpoints = checkpoints
    return _named(g, "grad", d, argnums)


@_transformation
def value_and_grad(f, argnums=0, has_aux=False, checkpoints=None):
    """`(f(x), grad(f)(x))` from one native reverse sweep, as `jax.value_and_grad`; with
    `has_aux`, `((value, aux), gradient)`. `checkpoints` as for `grad`."""
    checkpoints = _checkpoints(checkpoints, "value_and_grad")
    d = _dispatcher(f, "value_and_grad")
    nums, single = _argnums(argnums, "value_and_grad")

    plans = {}
    direct = _Direct(d, "value_and_grad", nums, plans, checkpoints) \
        if single and not has_aux else None

    def vg(*args, **kwargs):  # (once direct.first exists, it is the call: `_lldiff_direct`)
        if direct is not None and direct.first is not None:
            return direct.first(*args, **kwargs)
        y, aux, gs = _grad_call(d, "value_and_grad", nums, has_aux, args, kwargs, plans,
                                checkpoints, direct)
        out = gs[0] if single else tuple(gs)
        return ((y, aux) if has_aux else y), out

    if checkpoints is None:
        vg._lldiff_grad = (d, nums, single, has_aux, True)  # for lldiff.vectorize
    if direct is not None:
        vg._lldiff_direct = direct
    vg._lldiff_checkpoints = checkpoints
    return _named(vg, "value_and_grad", d, argnums)


def _checkpoints(c, who):
    """Check the `checkpoints` parameter: None or an int >= 1."""
    if c is None:
        return None
    if isinstance(c, bool) or not isinstance(c, int):
        raise TypeError(f"lldiff.{who}: checkpoints must be an int >= 1 or None, got "
                        f"{type(c).__name__}")
    if c < 1:
        raise ValueError(f"lldiff.{who}: checkpoints must be >= 1, got {c}")
    return c


def _named(fn, who, d, argnums):
    fn.__name__ = f"{who}({d.__name__})"
    fn.__qualname__ = fn.__name__
    fn.__doc__ = f"{who} of {d.__name__} w.r.t. argnums={argnums!r} by reverse mode."
    return fn


@_transformation
def hessian(f, argnums=0):
    """The Hessian of a float-valued `f` w.r.t. its float arguments and float arrays
    `argnums`, as `jax.hessian`: forward over reverse -- the jvp pass run on the reverse sweep
    the vjp pass made (passes/jvp.py differentiates its tape too) -- one native call per
    sweep of up to 16 tangent directions (one per scalar argument, one per array element).

    Returns a function of the same arguments whose value is d2f/dx2 for an int `argnums`, and
    for a tuple a tuple of rows, H[a][b] = d2f / dx_a dx_b in argnums order; a block for
    arrays a, b has shape a.shape + b.shape.
    """
    d = _dispatcher(f, "hessian")
    nums, single = _argnums(argnums, "hessian")
    plans = {}

    def hess(*args, **kwargs):
        key = None if kwargs else _plan_key(args)
        plan = plans.get(key) if key is not None else None
        if plan is not None:
            return plan(args)
        values = d._bind(args, kwargs)
        types = tuple(d._arg_type(name, v) for name, v in values)
        _check_argnums(d, "hessian", values, types, nums)
        _check_scalar_result(d, "hessian", types)
        saved = [_canonical(v) for _, v in values]
        if not any(types[i].is_memref for i in nums):
            run = _hessian_scalars(d, types, nums, single)
            if key is not None and len(args) == len(values):
                plans[key] = run
            return run(saved)
        return _hessian_arrays(d, values, types, saved, nums, single)

    return _named(hess, "hessian", d, argnums)


def _check_scalar_result(d, who, types):
    rtypes = d._ir(types).func.result_types
    if len(rtypes) != 1 or not rtypes[0].is_float:
        got = " and ".join(str(t) for t in rtypes) or "nothing"
        raise TypeError(f"lldiff.{who}: {d.__name__} must return one float; it returns {got}")


def _hessian_scalars(d, types, nums, single):
    """One sweep with a direction per argnum; returns the call (a plan)."""
    mask = [i in nums for i in range(len(types))]
    width = len(nums)
    spec = d._derived(types, "hvp", mask, width, seeded=(True,))
    tangents = [1.0 if j == i else 0.0 for i in range(len(types)) if mask[i] for j in nums]
    srt = sorted(nums)  # the gradient's results come in argument order
    base = (1 + width) + width  # y and the gradient, then y's W tangents

    def run(args):
        out = spec.entry(*args, *tangents)
        rows = [tuple(out[base + width * srt.index(a) + j] for j in range(width))
                for a in nums]
        return rows[0][0] if single else tuple(rows)
    return run


def _hessian_arrays(d, values, types, saved, nums, single):
    np = _np()
    mask = [i in nums for i in range(len(types))]
    arrays = [i for i in range(len(types)) if mask[i] and types[i].is_memref]
    scalars = [i for i in range(len(types)) if mask[i] and not types[i].is_memref]
    dirs = _directions(nums, types, saved)
    cols = {a: [] for a in nums}  # per argnum: d(gradient_a) along each direction
    for start in range(0, len(dirs), _JACFWD_WIDTH):
        part = dirs[start:start + _JACFWD_WIDTH]
        width = len(part)
        spec = d._derived(types, "hvp", mask, width, seeded=(True,))
        _check_arrays(d.__name__, values, spec.func.attrs.get("writes", ()))
        tangents = _unit_tangents(mask, types, saved, part)
        shadows = [np.zeros(saved[i].shape, saved[i].dtype) for i in arrays]
        dshadows = [[np.zeros(saved[i].shape, saved[i].dtype) for _ in range(width)]
                    for i in arrays]
        out = spec.entry(*_fresh(saved, types), *shadows, *tangents,
                         *[t for ts in dshadows for t in ts])
        out = out if isinstance(out, tuple) else (out,)
        base = (1 + len(scalars)) + width
        for a in nums:
            if types[a].is_memref:
                cols[a] += dshadows[arrays.index(a)]
            else:
                k = scalars.index(a)
                cols[a] += list(out[base + width * k:base + width * (k + 1)])
    rows = [_blocks(cols[a], nums, types, saved, False) for a in nums]
    return rows[0][0] if single else tuple(rows)


def hvp(f, primals, tangents):
    """The Hessian-vector product H·v of a float-valued `f`, forward over reverse in one
    native call (as `jvp(grad(f), primals, tangents)[1]` in JAX): the gradient is taken
    w.r.t. the arguments whose tangent is not None (floats and float arrays), and the result
    is its derivative along `tangents` -- a number or array per such argument, a tuple when
    there are several."""
    d = _dispatcher(f, "hvp")
    _check_pair("hvp", primals, tangents)
    nums = tuple(i for i, t in enumerate(tangents) if t is not None)
    if not nums:
        raise ValueError("lldiff.hvp: every tangent is None; nothing to differentiate")
    _, _, _, dg = _grad_jvp(d, "hvp", nums, primals, tangents)
    got = [dg[i] for i in nums]
    return got[0] if len(got) == 1 else tuple(got)


def _check_pair(who, primals, tangents):
    if not isinstance(primals, (tuple, list)) or not isinstance(tangents, (tuple, list)):
        raise TypeError(f"lldiff.{who}: primals and tangents must be tuples (or lists)")
    if len(primals) != len(tangents):
        raise ValueError(f"lldiff.{who}: {len(primals)} primals but {len(tangents)} "
                         "tangents; give one tangent (or None) per argument")


def _grad_jvp(d, who, nums, primals, tangents):
    """The gradient of `d` w.r.t. argnums `nums` and its derivative along `tangents` (None:
    that argument is not perturbed), by one forward-over-reverse call: (y, {argnum: g}, dy,
    {argnum: dg})."""
    values = d._bind(tuple(primals), {})
    types = tuple(d._arg_type(name, v) for name, v in values)
    tnums = tuple(i for i, t in enumerate(tangents) if t is not None)
    _check_argnums(d, who, values, types, nums)
    _check_argnums(d, who, values, types, tnums)
    _check_scalar_result(d, who, types)
    np = _np()
    mask = [i in nums for i in range(len(types))]
    tmask = [i in tnums for i in range(len(types))]
    arrays = [i for i in range(len(types)) if mask[i] and types[i].is_memref]
    scalars = [i for i in range(len(types)) if mask[i] and not types[i].is_memref]
    spec = d._derived(types, "hvp", mask, 1, seeded=(True,), tmask=tmask)
    _check_arrays(d.__name__, values, spec.func.attrs.get("writes", ()))
    saved = [_canonical(v) for _, v in values]
    dx = []
    for i in tnums:
        t = tangents[i]
        if types[i].is_memref:
            if np.shape(t) != saved[i].shape:
                raise ValueError(f"lldiff.{who}: tangent for argument '{values[i][0]}' has "
                                 f"shape {np.shape(t)}, the argument {saved[i].shape}")
            dx.append(np.array(t, dtype=saved[i].dtype, order="C", copy=True))
        elif not _real(t):
            raise TypeError(f"lldiff.{who}: tangent for argument '{values[i][0]}' must be a "
                            f"real number, got {type(t).__name__}")
        else:
            dx.append(float(t))
    shadows = [np.zeros(saved[i].shape, saved[i].dtype) for i in arrays]
    dshadows = [np.zeros(saved[i].shape, saved[i].dtype) for i in arrays]
    out = spec.entry(*_fresh(saved, types), *shadows, *dx, *dshadows)
    out = out if isinstance(out, tuple) else (out,)
    ng = 1 + len(scalars)  # y and the scalar gradients, then their tangents
    g = {i: out[1 + k] for k, i in enumerate(scalars)}
    g.update(zip(arrays, shadows))
    dg = {i: out[ng + 1 + k] for k, i in enumerate(scalars)}
    dg.update(zip(arrays, dshadows))
    return out[0], g, out[ng], dg


def jet(f, primals, series):
    """Taylor mode, as `jax.experimental.jet.jet`: truncated Taylor series pushed through f
    in one native call (passes/taylor.py).

    `primals` are the arguments x0; `series` has, per argument, a list [x1, ..., xK] of its
    derivative coefficients along a curve, x(t) = x0 + x1 t + x2 t^2/2! + ... + xK t^K/K!
    (None for an argument that stays constant, and for int and bool arguments). Returns
    `(f(x0), [y1, ..., yK])`, y(t) = f(x(t)) in the same convention (a tuple of such lists
    for a tuple-valued f; None for a result that is not a float). K <= 16.
    """
    d = _dispatcher(f, "jet")
    _check_pair("jet", primals, series)
    orders = {len(c) for c in series if c is not None}
    if len(orders) != 1:
        raise ValueError("lldiff.jet: give every non-None series the same length K >= 1 "
                         f"(got lengths {sorted(orders) or 'none'})")
    K = orders.pop()
    if not 1 <= K <= 16:
        raise ValueError(f"lldiff.jet: the series order must be 1..16, got {K}")
    values = d._bind(tuple(primals), {})
    types = tuple(d._arg_type(name, v) for name, v in values)
    nums = tuple(i for i, c in enumerate(series) if c is not None)
    _check_argnums(d, "jet", values, types, nums, arrays=False)
    mask = [i in nums for i in range(len(types))]
    spec = d._derived(types, "jet", mask, K)
    fact = [math.factorial(k) for k in range(K + 1)]
    coeffs = []
    for i in nums:
        for k, c in enumerate(series[i], start=1):
            if not _real(c):
                raise TypeError(f"lldiff.jet: series for argument '{values[i][0]}' must hold "
                                f"real numbers, got {type(c).__name__}")
            coeffs.append(float(c) / fact[k])
    rtypes = d._ir(types).func.result_types
    out = spec.entry(*[_canonical(v) for _, v in values], *coeffs)
    out = list(out) if isinstance(out, tuple) else [out]
    n = len(rtypes)
    rest = iter(out[n:])
    ys = []
    for t in rtypes:
        ys.append([next(rest) * fact[k] for k in range(1, K + 1)] if t.is_float else None)
    y0 = out[0] if n == 1 else tuple(out[:n])
    return y0, (ys[0] if n == 1 else tuple(ys))


def vjp(f, *primals):
    """`(f(*primals), pullback)` as `jax.vjp`: `pullback(ybar)` returns one cotangent per
    primal (None for int and bool arguments).

    The pullback is compiled: one native call runs the augmented forward sweep and the reverse
    sweep (the tape lives in that call, so the forward sweep is run again rather than kept
    between the two calls). `ybar` has the shape of f's result: a number, or a tuple with a
    number (or None) for each float result and None (or 0) for int and bool results. A None
    cotangent leaves that result out (no adjoint code for it), unlike 0.0, which is multiplied
    through (and gives NaN where that result's derivative is infinite, as in JAX).
    """
    d = _dispatcher(f, "vjp")
    values = d._bind(primals, {})
    types = tuple(d._arg_type(name, v) for name, v in values)
    saved = _fresh([_canonical(v) for _, v in values], types)

    def fresh():  # the function may write its arrays: every sweep starts from the primals
        return _fresh(saved, types)
    y = d(*fresh())
    rtypes = d._ir(types).func.result_types
    mask = [_differentiable(t) for t in types]
    ys = list(y) if isinstance(y, tuple) else [y]

    def pullback(ybar):
        bars = list(ybar) if isinstance(ybar, tuple) else [ybar]
        if len(bars) != len(rtypes):
            raise ValueError(f"lldiff.vjp: the cotangent must have the shape of "
                             f"{d.__name__}'s result ({len(rtypes)} values), got {ybar!r}")
        seeds, arrays = [], {}
        for i, (t, b) in enumerate(zip(rtypes, bars)):
            if t.is_float:
                if b is not None and not _real(b):
                    raise TypeError(f"lldiff.vjp: cotangent {i} must be a real number, "
                                    f"got {type(b).__name__}")
                seeds.append(0.0 if b is None else float(b))
            elif _differentiable(t) and b is not None:
                np = _np()
                if np.shape(b) != ys[i].shape:
                    raise ValueError(f"lldiff.vjp: cotangent {i} has shape {np.shape(b)}, "
                                     f"the result {ys[i].shape}")
                arrays[i] = np.array(b, dtype=ys[i].dtype, order="C", copy=True)
            elif b is not None and not (_real(b) and b == 0):
                raise TypeError(f"lldiff.vjp: result {i} of {d.__name__} is not a float; "
                                f"its cotangent must be None or 0, got {b!r}")
        if not any(mask):
            return tuple(None for _ in values)
        # a None cotangent means the result is not differentiated at all
        useful = [_differentiable(t) and b is not None for t, b in zip(rtypes, bars)]
        spec = d._derived(types, "vjp", mask, seeded=useful)
        _check_arrays(d.__name__, values, spec.func.attrs.get("writes", ()))
        args = fresh()
        shadows = {i: _np().zeros(args[i].shape, args[i].dtype)
                   for i, t in enumerate(types) if mask[i] and t.is_memref}
        given = [arrays[i] for i in spec.func.attrs.get("array_seeds", ())]
        out = spec.entry(*args, *seeds, *given, *shadows.values())
        out = list(out) if isinstance(out, tuple) else [out]
        bars_x = iter(out[len(rtypes):])
        return tuple(shadows[i] if i in shadows else next(bars_x) if m else None
                     for i, m in enumerate(mask))

    pullback.__name__ = f"pullback({d.__name__})"
    return y, pullback


@_transformation
def jacrev(f, argnums=0):
    """The Jacobian of `f` by reverse mode: one native reverse sweep per output element (each
    compiled to differentiate that output alone).

    Returns what `jacfwd` returns: d out/d x for an int `argnums` (a tuple over outputs for a
    tuple-valued f), a tuple over argnums for a tuple of argnums. For an array output of
    shape S and an array argument of shape A the block has shape S + A. Of a gradient
    (`jacrev(grad(h))`), the Hessian rows, computed forward over reverse as `jacfwd` does.
    """
    if getattr(f, "_lldiff_grad", None) is not None:
        return _derivative_of_grad(f, argnums, "jacrev", False)
    d = _dispatcher(f, "jacrev")
    nums, single = _argnums(argnums, "jacrev")

    def jac(*args, **kwargs):
        np = _np()
        values = d._bind(args, kwargs)
        types = tuple(d._arg_type(name, v) for name, v in values)
        _check_argnums(d, "jacrev", values, types, nums)
        rtypes = d._ir(types).func.result_types
        mask = [i in nums for i in range(len(values))]
        saved = [_canonical(v) for _, v in values]

        def fresh():  # the function may write its arrays: every sweep starts anew
            return _fresh(saved, types)
        ys = d(*fresh())
        ys = list(ys) if isinstance(ys, tuple) else [ys]
        scalars = [i for i in sorted(nums) if not types[i].is_memref]
        arrays = [i for i in sorted(nums) if types[i].is_memref]
        rows = []
        for k, t in enumerate(rtypes):
            if not _differentiable(t):
                rows.append(None)
                continue
            spec = d._derived(types, "vjp", mask, seeded=[j == k for j in range(len(rtypes))])
            _check_arrays(d.__name__, values, spec.func.attrs.get("writes", ()))
            out_shape = ys[k].shape if t.is_memref else ()
            blocks = {i: np.zeros(out_shape + (np.shape(saved[i]) if i in arrays else ()))
                      for i in nums}
            for idx in np.ndindex(out_shape):
                seeds = [1.0 if j == k else 0.0 for j, u in enumerate(rtypes) if u.is_float]
                given = []
                if t.is_memref and k in spec.func.attrs.get("array_seeds", ()):
                    e = np.zeros(out_shape, ys[k].dtype)
                    e[idx] = 1.0
                    given = [e]
                a = fresh()
                shadows = [np.zeros(a[i].shape, a[i].dtype) for i in arrays]
                out = spec.entry(*a, *seeds, *given, *shadows)
                out = list(out) if isinstance(out, tuple) else [out]
                for i, g in zip(scalars, out[len(rtypes):]):
                    blocks[i][idx] = g
                for i, g in zip(arrays, shadows):
                    blocks[i][idx] = g
            g = [blocks[i] if blocks[i].shape else float(blocks[i]) for i in nums]
            rows.append(g[0] if single else tuple(g))
        if not rows:
            return None
        return rows[0] if len(rows) == 1 else tuple(rows)

    # for a float-valued f this is grad(f, argnums): jacfwd(jacrev(f)), jacrev(jacrev(f)),
    # jvp(jacrev(f)) and vectorize(jacrev(f)) treat it as one (and say so otherwise)
    jac._lldiff_grad = (d, nums, single, False, False)
    return _named(jac, "jacrev", d, argnums)
