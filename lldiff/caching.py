"""`cache=True`: the keys of compiled functions and the way their machine code reaches the
disk cache (runtime/diskcache.py) and comes back from it.

A key names everything the machine code depends on:
- the function: module, qualified name and source text, and what its code refers to -- for
  each global or closure name in its bytecode, the value if it is a number (lldiff freezes
  those into the code), the module name plus the numbers among that module's attributes the
  code names (`cfg.ALPHA`), the qualified name of functions and classes, and, for other lldiff
  functions it calls, their own keys and options, recursively;
- the specialization: argument signature (as symbol names mangle it: f64_arr1f64), the
  transformation (primal, jvp/vjp/grad with the differentiated arguments, seeds and width,
  the batch map), `opt` and `boundscheck`, numpy's version when arrays are involved;
- `diskcache.environment()`: lldiff, llvmlite, Python, machine and CPU.

A hit needs neither the frontend nor llvmlite.binding: `signature()` types the arguments from
the Python values, the entry is read and checked, and the object file is loaded by
runtime/objload.py (or through LLVM where that loader does not apply). Functions whose source
cannot be read are never cached. Must not build or inspect lldiff IR.
"""

import sys
import types as _types

__all__ = ["signature", "key", "fetch", "store", "load"]

_NUMBER = (bool, int, float, complex)


def signature(values):
    """The mangled argument signature ("f64_i64", "arr1f64") of `(name, value)` pairs as the
    entry points take them (exact float/int/bool, plain numpy arrays), or None when some
    value needs the dispatcher's conversions first."""
    parts = []
    for _, v in values:
        t = type(v)
        if t is float:
            parts.append("f64")
        elif t is int:
            parts.append("i64")
        elif t is bool:
            parts.append("i1")
        else:
            np = sys.modules.get("numpy")
            if np is None or t is not np.ndarray or v.ndim not in (1, 2) or \
                    not v.dtype.isnative:
                return None
            elem = {"f8": "f64", "f4": "f32", "i8": "i64"}.get(v.dtype.str[1:])
            if elem is None:
                return None
            parts.append(f"arr{v.ndim}{elem}" + ("" if v.flags.c_contiguous else "s"))
    return "_".join(parts) or "void"


def key(d, sig, variant):
    """The full key text of dispatcher `d`'s specialization `sig`, transformation `variant`
    (a tuple), or None when `d` cannot be cached (no source)."""
    from .runtime import diskcache
    fp = d.__dict__.get("_cache_fingerprint")
    if fp is None:
        fp = d._cache_fingerprint = _describe_function(d.py_func, set()) or ""
    if not fp:
        return None
    np = f"numpy {sys.modules['numpy'].__version__}\n" if "arr" in sig else ""
    return (f"{diskcache.environment()}\n{np}opt={d.opt} boundscheck={d.boundscheck} "
            f"fastmath={d.fastmath}\n"
            f"{sig} {variant!r}\n{fp}")


def fetch(d, sig, variant):
    """(metadata, {symbol: address} of its "exports", owner to keep alive) from the cache,
    or None."""
    from .runtime import diskcache
    k = key(d, sig, variant)
    if k is None:
        return None
    got = diskcache.load(d.__name__, k)
    if got is None:
        return None
    meta, obj = got
    if not meta.get("exports", True):  # an entry of metadata alone: nothing to load
        return meta, {}, None
    try:
        owner, addresses = load(obj, meta["exports"])
    except Exception:  # a loader failure is a miss: the caller compiles
        diskcache.stats["rejected"] += 1
        return None
    return meta, addresses, owner


def peek(d, sig, variant):
    """The metadata of a cache entry, or None; its code is not loaded."""
    from .runtime import diskcache
    k = key(d, sig, variant)
    got = None if k is None else diskcache.load(d.__name__, k)
    return None if got is None else got[0]


def store(d, sig, variant, meta, obj):
    from .runtime import diskcache
    k = key(d, sig, variant)
    if k is not None:
        diskcache.store(d.__name__, k, meta, obj)


def load(obj, exports):
    """Load object file bytes; (owner, {export: address})."""
    from .runtime import objload, process_symbol
    if objload.supported():
        try:
            image = objload.load_object(obj, exports, process_symbol)
            return image, image.addresses
        except objload.UnsupportedObject:
            pass
    from .runtime import PROCESS_SYMBOLS, get_engine
    imports = {n: process_symbol(n) for n in PROCESS_SYMBOLS if n.encode() in obj}
    lib = get_engine().load_object(obj, exports, imports)
    return lib, lib.addresses


# --- the function part of the key ---------------------------------------------------------

def _code_names(code, out):
    out.update(code.co_names)
    for c in code.co_consts:
        if isinstance(c, _types.CodeType):
            _code_names(c, out)
    return out


def _source_lines(fn):
    """The lines of `fn`'s definition (decorators to the last line with code), from
    linecache: inspect.getsourcelines would tokenize, whose first use compiles regular
    expressions for ~20 ms."""
    import linecache
    code = getattr(fn, "__code__", None)
    if code is None:
        return None
    lines = linecache.getlines(code.co_filename, fn.__globals__)
    first = code.co_firstlineno
    last = _last_line(code, first)
    if not lines or last > len(lines):
        return None
    return "".join(lines[first - 1:last]), first


def _last_line(code, last):
    for _, end, _, _ in code.co_positions() if hasattr(code, "co_positions") else ():
        if end is not None and end > last:
            last = end
    for _, _, line in code.co_lines():
        if line is not None and line > last:
            last = line
    for c in code.co_consts:
        if isinstance(c, _types.CodeType):
            last = _last_line(c, last)
    return last


def _describe_function(fn, seen):
    got = _source_lines(fn)
    if got is None:
        return None
    text, first = got
    code = fn.__code__
    names = _code_names(code, set())
    cells = {}
    for name, cell in zip(code.co_freevars, fn.__closure__ or ()):
        try:
            cells[name] = cell.cell_contents
        except ValueError:
            pass
    deps = []
    for name in sorted(names | set(cells)):
        if name in cells:
            v = cells[name]
        elif name in fn.__globals__:
            v = fn.__globals__[name]
        else:
            continue  # a builtin or an attribute name
        deps.append(f"{name}={_describe(v, names, seen)}")
    return (f"{fn.__module__}.{fn.__qualname__} {code.co_filename}:{first}\n{text}\n" +
            "\n".join(deps))


def _describe(v, names, seen):
    if isinstance(v, _NUMBER) or v is None or isinstance(v, (str, bytes)):
        return f"{type(v).__name__} {v!r}"
    if isinstance(v, _types.ModuleType):
        attrs = [f"{a}={v.__dict__[a]!r}" for a in sorted(names)
                 if isinstance(v.__dict__.get(a), _NUMBER)]
        return f"module {v.__name__} {' '.join(attrs)}"
    from .api import Dispatcher
    if isinstance(v, Dispatcher):
        if id(v) in seen:
            return f"lldiff {v.__qualname__} (again)"
        seen.add(id(v))
        rule = ""
        if v._custom is not None:  # a user rule is part of every derivative through v
            rule = f" custom_{v._custom[0]} {_describe(v._custom[1], names, seen)}"
        return (f"lldiff {type(v).__mro__[1].__name__} opt={v.opt} "
                f"boundscheck={v.boundscheck}{rule} "
                f"{{\n{_describe_function(v.py_func, seen)}\n}}")
    qn = getattr(v, "__qualname__", None) or getattr(v, "__name__", None)
    if isinstance(qn, str):
        return f"object {getattr(v, '__module__', None)}.{qn}"
    return f"instance of {type(v).__module__}.{type(v).__qualname__}"
