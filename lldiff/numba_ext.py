"""numba interop: lldiff functions and their derivatives called from `@numba.njit` code.

Inside njit code, an `@lldiff.jit` function, a `@jit_grad` function, and `lldiff.grad`,
`value_and_grad` and `jacfwd` of one are called like any function of numbers. Each call site
becomes a numba intrinsic whose code is lldiff's LLVM IR for that specialization, linked into
numba's code library; numba optimizes after linking, so the call is inlined into the loop
(no call overhead: ../shared/notes/infra.md, section 3). Arguments convert as numba converts
them (any int to int64, float32 to float64); results are what the Python call returns (a
number or a tuple). An exception the lldiff function raises is raised by the njit function,
same class and message.

numba finds these types through its `numba_extensions` entry point (`init`, see
pyproject.toml), which calls `register()` when numba first compiles; `register()` may also be
called by hand. Importing this module imports numba; `import lldiff` never does.

The only module that uses numba's internals. What it relies on, all checked by
tests/test_numba_interop.py (which fails naming the missing piece after a numba upgrade):
`numba.core.typing.typeof.typeof_impl` (a singledispatch function), `numba.extending.intrinsic`
(whose type `numba.core.registry.cpu_target.typing_context.resolve_value_type` gives),
the CPU context's `codegen()` with `create_library` / `_create_empty_module`, a code
library's `add_llvm_module` / `add_linking_library`, `context.active_code_library`,
`context.call_conv.return_user_exc`, `context.cast`, `context.make_tuple` and
`numba.core.cgutils.get_or_insert_function`.
"""

import builtins
import inspect
import itertools
import threading
import weakref

__all__ = ["register"]

_lock = threading.RLock()
_registered = False
_intrinsics = weakref.WeakKeyDictionary()  # lldiff callable -> its numba intrinsic
_libraries = {}  # (numba codegen, specialization key) -> (library, symbol, error table)
_serial = itertools.count()


def register():
    """Teach numba the types of lldiff callables (idempotent)."""
    global _registered
    with _lock:
        if _registered:
            return
        from numba.core.typing.typeof import typeof_impl

        from .api import Dispatcher
        from .pickling import Transformed

        @typeof_impl.register(Dispatcher)
        def _typeof_dispatcher(val, c):
            return _numba_type(val)

        @typeof_impl.register(Transformed)
        def _typeof_transformed(val, c):  # lldiff.grad / value_and_grad / jacfwd of one
            if getattr(val, "_lldiff_grad", None) is not None or \
                    getattr(val, "_lldiff_jacfwd", None) is not None:
                return _numba_type(val)
            return None  # (hessian, checkpointed gradients: not callable from numba)

        _registered = True


def _numba_type(obj):
    from numba.core.registry import cpu_target
    with _lock:
        fn = _intrinsics.get(obj)
        if fn is None:
            fn = _intrinsics[obj] = _make_intrinsic(obj)
    # the intrinsic's Function type, as numba registered it for the intrinsic object
    ctx = cpu_target.typing_context
    ctx.refresh()
    return ctx.resolve_value_type(fn)


def _ir_type(where, k, t):
    from numba.core import types as nt
    from numba.core.errors import TypingError

    from .ir import F64, I1, I64
    if isinstance(t, nt.Boolean):
        return I1, nt.boolean
    if isinstance(t, nt.Integer):
        return I64, nt.int64
    if isinstance(t, nt.Float):
        return F64, nt.float64
    raise TypingError(f"{where}: argument {k} is {t}; lldiff functions called from numba take "
                      "numbers (ints, floats, bools)")


def _numba_result(t):
    from numba.core import types as nt

    from .ir import F64, I64
    return nt.float64 if t is F64 else nt.int64 if t is I64 else nt.boolean


def _make_intrinsic(obj):
    from numba.extending import intrinsic

    from .batch import vectorize
    vz = vectorize(obj, threads=1)  # its plan: which derivative, seeds, result shape
    where = vz.__name__.replace("vectorize(", "lldiff function ", 1).rstrip(")")

    def typer(typingctx, *args):
        converted = [_ir_type(where, k, t) for k, t in enumerate(args)]
        types = tuple(c[0] for c in converted)
        plan = vz.plan(types)
        spec = vz.d._map_spec(types, *plan.kernel)
        rtypes = spec.func.result_types
        shape = vz.results(list(range(len(rtypes))), plan, rtypes)
        sig = _type_of(shape, rtypes)(*args)
        key = (id(vz.d), types, plan.kernel)

        def codegen(context, builder, signature, llargs):
            return _call(context, builder, signature, llargs, converted, vz, key, spec,
                         plan, shape)
        return sig, codegen

    # numba reads the intrinsic's arity from its signature (a *args typer would get the
    # arguments packed in a tuple): the function's own parameters, after the typing context
    P = inspect.Parameter
    typer.__signature__ = inspect.Signature(
        [P("typingctx", P.POSITIONAL_OR_KEYWORD)] +
        [P(p.name, P.POSITIONAL_OR_KEYWORD) for p in vz.d._signature.parameters.values()])
    typer.__name__ = f"lldiff_{vz.d.__name__}"
    return intrinsic(typer)


def _type_of(shape, rtypes):
    from numba.core import types as nt
    if shape is None:
        return nt.none
    if isinstance(shape, tuple):
        return nt.Tuple([_type_of(s, rtypes) for s in shape])
    return _numba_result(rtypes[shape])


def _library(context, key, vz, spec):
    """numba code library holding lldiff's LLVM IR of `spec`, made once per numba codegen."""
    codegen = context.codegen()
    cache_key = (id(codegen), key)
    with _lock:
        got = _libraries.get(cache_key)
        if got is not None:
            return got
        import llvmlite.binding as llvm

        from .codegen.llvm import emit_module
        from .runtime import PROCESS_SYMBOLS, process_symbol
        lm, errors = emit_module(spec.module, {spec.symbol}, spec.symbol,
                                 fastmath=vz.d.fastmath)
        text = str(lm)
        for name in PROCESS_SYMBOLS:  # e.g. the runtime counters heap tapes update
            if f'"{name}"' in text:
                llvm.add_symbol(name, process_symbol(name))
        mod = llvm.parse_assembly(text)
        like = codegen._create_empty_module("lldiff")
        mod.triple, mod.data_layout = like.triple, like.data_layout
        symbol = f"lldiff.numba.{next(_serial)}.{spec.symbol}"  # unique in numba's library
        mod.get_function(spec.symbol).name = symbol
        lib = codegen.create_library(f"lldiff.{spec.symbol}")
        lib.add_llvm_module(mod)
        got = _libraries[cache_key] = (lib, symbol, list(errors.entries))
        return got


def _call(context, builder, signature, llargs, converted, vz, key, spec, plan, shape):
    from llvmlite import ir as L
    from numba.core import cgutils

    from .codegen.llvm import llvm_type
    lib, symbol, errors = _library(context, key, vz, spec)
    context.active_code_library.add_linking_library(lib)
    func = spec.func
    args = [context.cast(builder, v, t, nt_) for v, t, (_, nt_) in
            zip(llargs, signature.args, converted)]
    args += [L.Constant(L.DoubleType(), s) for s in plan.seeds]
    outs = [cgutils.alloca_once(builder, llvm_type(t)) for t in func.result_types]
    fnty = L.FunctionType(L.IntType(32), [llvm_type(t) for t in func.arg_types] +
                          [o.type for o in outs])
    fn = cgutils.get_or_insert_function(builder.module, fnty, symbol)
    status = builder.call(fn, args + outs)
    for code, (exc, msg) in enumerate(errors, 1):
        failed = builder.icmp_unsigned("==", status, L.Constant(L.IntType(32), code))
        with builder.if_then(failed, likely=False):
            context.call_conv.return_user_exc(builder, getattr(builtins, exc), (msg,))
    values = [builder.load(o) for o in outs]
    return _build(context, builder, shape, values, signature.return_type)


def _build(context, builder, shape, values, nty):
    if shape is None:
        return context.get_dummy_value()
    if isinstance(shape, tuple):
        items = [_build(context, builder, s, values, t) for s, t in zip(shape, nty.types)]
        return context.make_tuple(builder, nty, items)
    return values[shape]
