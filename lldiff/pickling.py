"""Pickling compiled functions and derivatives, so they run in `multiprocessing` pools and on
Dask workers.

A compiled function pickles as what it is made from, never as machine code:

* by reference (module and name) when its module has it under its own name, as pickle does
  for functions: the other process imports the module and gets its compiled function there
  (not for a script's `__main__`, which other processes do not have);
* otherwise by source: the function's source text (decorators dropped), its file and line,
  the globals and closure values its code names (modules by name, Python functions the same
  way, recursively, other values as pickle pickles them), and the options (`opt`, `verify`,
  `boundscheck`, `cache`, `fastmath`, a custom rule). The other side rebuilds the function
  from that text under the name "<lldiff pickled QUALNAME from FILE>" (so compile errors
  still name the original file and line) without needing the file.

Either way the other side compiles each specialization on its first call, or loads it from the
disk cache with `cache=True`. Derivatives (`lldiff.grad`, `value_and_grad`, `jacfwd`,
`jacrev`, `hessian`) are `Transformed` objects that pickle as the transformation and its
arguments, applied again on the other side.

Owns the pickled forms; must not compile anything.
"""

import builtins
import linecache
import sys
import textwrap
import types

__all__ = ["Transformed", "transformed", "reduce_dispatcher"]


# --- plain Python functions ----------------------------------------------------------------

def _lookup(module, qualname):
    obj = module
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def _importable(obj):
    """Whether pickle by reference finds `obj` itself under its module and qualname, in a
    module another process can import too (a script's `__main__` is not one: Dask workers and
    `python -c` have their own)."""
    name = getattr(obj, "__module__", None) or ""
    if name in ("__main__", "__mp_main__"):
        return False
    module = sys.modules.get(name)
    qualname = getattr(obj, "__qualname__", "")
    return module is not None and "<locals>" not in qualname and \
        _lookup(module, qualname) is obj


def _names(code):
    names = set(code.co_names)
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            names |= _names(c)
    return names


def _value(v):
    if isinstance(v, types.ModuleType):
        return _Module(v.__name__)
    if isinstance(v, types.FunctionType) and not _importable(v):
        return _FunctionBySource(v)
    return v


class _Module:
    def __init__(self, name):
        self.name = name

    def __reduce__(self):
        return _import, (self.name,)


def _import(name):
    __import__(name)
    return sys.modules[name]


class _FunctionBySource:
    """A Python function that pickle cannot find by name, pickled as its source."""

    def __init__(self, fn):
        import ast
        import inspect
        try:
            lines, first = inspect.getsourcelines(fn)
            filename = inspect.getsourcefile(fn) or inspect.getfile(fn)
        except (OSError, TypeError) as e:
            raise TypeError(f"cannot pickle {fn.__qualname__}: its source cannot be read ({e})"
                            "; define it at the top level of a module") from None
        text = textwrap.dedent("".join(lines))
        node = ast.parse(text).body[0]
        if not isinstance(node, ast.FunctionDef) or node.name != fn.__name__:
            raise TypeError(f"cannot pickle {fn.__qualname__}: {filename} no longer has its "
                            "source where it was defined (was the file edited?)")
        body = text.splitlines(keepends=True)[node.lineno - 1:]  # from `def`, no decorators
        self.text = "".join(body)
        self.first = first + node.lineno - 1
        self.filename = filename
        self.name, self.qualname, self.module = fn.__name__, fn.__qualname__, fn.__module__
        g = fn.__globals__
        self.globals = {n: _value(g[n]) for n in sorted(_names(fn.__code__)) if n in g}
        closure = fn.__closure__ or ()
        self.closure = {n: _value(c.cell_contents)
                        for n, c in zip(fn.__code__.co_freevars, closure)}
        self.defaults = fn.__defaults__

    def __reduce__(self):
        return _function_from_source, (self.text, self.first, self.filename, self.name,
                                       self.qualname, self.module, self.globals, self.closure,
                                       self.defaults)


def _function_from_source(text, first, filename, name, qualname, module, globals_, closure,
                          defaults):
    pseudo = f"<lldiff pickled {qualname} from {filename}>"
    padded = "\n" * (first - 1) + text
    lines = padded.splitlines(keepends=True)
    linecache.cache[pseudo] = (len(padded), None, lines, pseudo)  # mtime None: kept
    ns = {"__name__": module, "__builtins__": builtins}
    ns.update(globals_)
    ns.update(closure)  # free variables become globals of the rebuilt function
    exec(compile(padded, pseudo, "exec"), ns)
    fn = ns[name]
    fn.__qualname__ = qualname
    fn.__defaults__ = defaults
    return fn


def function_state(fn):
    """`fn` itself when pickle finds it by name, else its by-source form."""
    return fn if _importable(fn) else _FunctionBySource(fn)


# --- compiled functions ---------------------------------------------------------------------

_OPTIONS = ("opt", "verify", "boundscheck", "cache", "fastmath")


def reduce_dispatcher(d):
    """`__reduce__` of an lldiff.jit / jit_grad / custom function."""
    if _importable(d):
        return d.__qualname__  # pickle saves it as a global: the module's own object
    options = {k: getattr(d, k) for k in _OPTIONS}
    kind = type(d).__mro__[1].__name__  # Dispatcher, JitGrad, CustomJvp, CustomVjp
    rule = d._custom[1] if d._custom is not None else None
    return _rebuild_dispatcher, (kind, function_state(d.py_func), options, rule)


def _rebuild_dispatcher(kind, py_func, options, rule):
    from . import api, custom
    cls = {"Dispatcher": api.Dispatcher, "JitGrad": api.JitGrad,
           "CustomJvp": custom.CustomJvp, "CustomVjp": custom.CustomVjp}[kind]
    d = type(f"{'jit_grad' if kind == 'JitGrad' else 'jit'}<{py_func.__name__}>", (cls,),
             {})(py_func, options["opt"], options["verify"])
    for k in ("boundscheck", "cache", "fastmath"):
        setattr(d, k, options[k])
    if rule is not None:
        d._set_rule(rule)
    return d


# --- derivatives ------------------------------------------------------------------------------

class Transformed:
    """A function lldiff made from another (`grad(f)`, `jacfwd(f)`, ...): calls run the
    transformation's code; pickles as (transformation, f, its arguments)."""

    __slots__ = ("__dict__", "__weakref__")

    def __reduce__(self):
        name, f, args, kwargs = self._lldiff_recipe
        return _retransform, (name, f, args, kwargs)

    def __repr__(self):
        return f"<lldiff {self.__name__}>"


def _retransform(name, f, args, kwargs):
    from . import ad
    return getattr(ad, name)(f, *args, **kwargs)


def transformed(fn, name, f, args, kwargs):
    """Closure `fn`, the result of lldiff.<name>(f, *args, **kwargs), as a Transformed whose
    calls are `fn`'s (its class calls `fn` directly: no extra Python frame). Where `fn` has a
    native entry that returns exactly its result (`_lldiff_direct`, ad.py `_Direct`), that
    builtin becomes the class's `__call__` once it exists, as for lldiff.jit functions."""
    cls = type(fn.__name__, (Transformed,), {"__call__": staticmethod(fn), "__slots__": ()})
    direct = fn.__dict__.get("_lldiff_direct")
    if direct is not None:
        direct.install = lambda entry: setattr(cls, "__call__", entry)
    t = cls()
    t.__dict__.update(fn.__dict__)
    t.__name__, t.__qualname__, t.__doc__ = fn.__name__, fn.__qualname__, fn.__doc__
    t.__wrapped__ = fn
    t._lldiff_recipe = (name, f, args, kwargs)
    return t
