"""CPython entry points generated in LLVM IR (METH_FASTCALL | METH_KEYWORDS).

`PyObject *entry(PyObject *self, PyObject *const *args, Py_ssize_t nargsf, PyObject *kwnames)`
unboxes exact `float`, `int` and `bool` arguments by reading the objects directly, calls the
native function, turns a nonzero status into the Python exception of the error table, and
boxes the results (a tuple for several). Anything else -- keywords, a wrong count, other
types -- is handed to `self`, a Python callable (the dispatcher's slow path), unchanged.

A gradient taking float arrays (attribute `py_alloc`) also accepts the primal arguments
alone: it then makes the zeroed arrays the gradients accumulate into itself (numpy.zeros of
each array's shape and dtype) and returns `(value, gradient)` the way `@jit_grad` does --
one native call from Python, no Python frame.

Owns the argument ABI; object layouts assume CPython's non-debug build (ob_type at 8,
PyFloatObject.ob_fval at 16). Must not import llvmlite.binding.
"""

from llvmlite import ir as L

from ..ir import F64, I1, I64
from .llvm import I32, llvm_type

__all__ = ["emit_entry", "entry_name"]

_PTR = L.IntType(8).as_pointer()
_I64 = L.IntType(64)


# Objects of this process the entry points use, as external symbols (not baked-in addresses,
# so that object code can be cached on disk and loaded by another process): the loader binds
# them to id(numpy.ndarray) and to the array boxer (runtime.process_symbols).
NDARRAY_TYPE = "lldiff.ndarray_type"
ARRAY_BOXER = "lldiff.array_boxer"
NUMPY_ZEROS = "lldiff.numpy_zeros"


def entry_name(symbol):
    return f"{symbol}.pyentry"


def _extern_global(lm, name):
    g = lm.globals.get(name)
    if g is None:
        g = L.GlobalVariable(lm, L.IntType(8), name=name)
        g.linkage = "external"
    return g


def _extern_fn(lm, name, ret, args, var_arg=False):
    fn = lm.globals.get(name)
    if fn is None:
        fn = L.Function(lm, L.FunctionType(ret, args, var_arg=var_arg), name=name)
    return fn


def _cstring(lm, text, name):
    data = bytearray(text.encode("utf-8")) + b"\0"
    arr = L.ArrayType(L.IntType(8), len(data))
    g = L.GlobalVariable(lm, arr, name=name)
    g.initializer = L.Constant(arr, data)
    g.global_constant = True
    g.linkage = "private"
    return g


def emit_entry(lm, func, errors):
    """Add the CPython entry point of IR function `func` (already declared in `lm`)."""
    native = lm.globals[func.name]
    fnty = L.FunctionType(_PTR, [_PTR, _PTR.as_pointer(), _I64, _PTR])
    fn = L.Function(lm, fnty, name=entry_name(func.name))
    self_, args, nargsf, kwnames = fn.args
    entry = fn.append_basic_block("entry")
    fallback = fn.append_basic_block("fallback")
    bd = L.IRBuilder(entry)

    vectorcall = _extern_fn(lm, "PyObject_Vectorcall", _PTR, [_PTR, _PTR.as_pointer(), _I64, _PTR])
    as_long = _extern_fn(lm, "PyLong_AsLongLong", _I64, [_PTR])
    err_occurred = _extern_fn(lm, "PyErr_Occurred", _PTR, [])
    float_type = _extern_global(lm, "PyFloat_Type")
    long_type = _extern_global(lm, "PyLong_Type")
    true_obj = _extern_global(lm, "_Py_TrueStruct")
    false_obj = _extern_global(lm, "_Py_FalseStruct")

    # py_alloc = (number of primal results, primal index per shadow array, gradient order:
    # k >= 0 the result k, k < 0 the shadow -k - 1)
    alloc = func.attrs.get("py_alloc")
    n_primal = len(func.args) - (len(alloc[1]) if alloc else 0)
    nargs = bd.and_(nargsf, L.Constant(_I64, (1 << 63) - 1))
    full = bd.icmp_unsigned("==", nargs, L.Constant(_I64, len(func.args)))
    short = bd.icmp_unsigned("==", nargs, L.Constant(_I64, n_primal)) if alloc else None
    ok = bd.and_(bd.or_(full, short) if alloc else full,
                 bd.icmp_unsigned("==", kwnames, L.Constant(_PTR, None)))
    start = fn.append_basic_block("unbox")
    bd.cbranch(ok, start, fallback)
    bd.position_at_end(start)

    def ob_type(obj):
        p = bd.gep(obj, [L.Constant(_I64, 8)])
        return bd.load(bd.bitcast(p, _PTR.as_pointer()))

    values, made = [], []  # made: the arrays this call allocated (NULL when given)
    for i, a in enumerate(func.args):
        if i >= n_primal:
            m, new = _shadow(fn, bd, args, alloc[1][i - n_primal], a.type,
                             i in func.attrs.get("writes", ()), short, fallback, i, made)
            values.append(m)
            made.append(new)
            continue
        obj = bd.load(bd.gep(args, [L.Constant(_I64, i)]))
        nxt = fn.append_basic_block(f"arg{i}")
        if a.type is F64:
            bd.cbranch(bd.icmp_unsigned("==", ob_type(obj), float_type), nxt, fallback)
            bd.position_at_end(nxt)
            p = bd.bitcast(bd.gep(obj, [L.Constant(_I64, 16)]), L.DoubleType().as_pointer())
            values.append(bd.load(p))
        elif a.type is I64:
            bd.cbranch(bd.icmp_unsigned("==", ob_type(obj), long_type), nxt, fallback)
            bd.position_at_end(nxt)
            v = bd.call(as_long, [obj])
            check = fn.append_basic_block(f"arg{i}.check")
            fail = fn.append_basic_block(f"arg{i}.fail")
            good = fn.append_basic_block(f"arg{i}.ok")
            bd.cbranch(bd.icmp_signed("==", v, L.Constant(_I64, -1)), check, good)
            bd.position_at_end(check)
            bd.cbranch(bd.icmp_unsigned("!=", bd.call(err_occurred, []), L.Constant(_PTR, None)),
                       fail, good)
            bd.position_at_end(fail)
            bd.ret(L.Constant(_PTR, None))
            bd.position_at_end(good)
            values.append(v)
        elif a.type is I1:
            is_true = bd.icmp_unsigned("==", obj, true_obj)
            is_bool = bd.or_(is_true, bd.icmp_unsigned("==", obj, false_obj))
            bd.cbranch(is_bool, nxt, fallback)
            bd.position_at_end(nxt)
            values.append(is_true)
        elif a.type.is_memref:
            writes = i in func.attrs.get("writes", ())
            values.append(_unbox_array(fn, bd, obj, a.type, writes, nxt, fallback, i))
        else:
            raise TypeError(f"no entry-point ABI for {a.type}")

    slots = [bd.alloca(llvm_type(t)) for t in func.result_types]
    status = bd.call(native, values + slots)
    good = fn.append_basic_block("ok")
    bad = fn.append_basic_block("error")
    bd.cbranch(bd.icmp_signed("==", status, L.Constant(I32, 0)), good, bad)

    bd.position_at_end(bad)
    _release(lm, bd, made)
    set_string = _extern_fn(lm, "PyErr_SetString", L.VoidType(), [_PTR, _PTR])
    sw_default = fn.append_basic_block("error.unknown")
    sw = bd.switch(status, sw_default)
    for k, (exc, msg) in enumerate(errors.entries, start=1):
        blk = fn.append_basic_block(f"error.{k}")
        sw.add_case(L.Constant(I32, k), blk)
        bd.position_at_end(blk)
        exc_ptr = _extern_global(lm, f"PyExc_{exc}")
        exc_obj = bd.load(bd.bitcast(exc_ptr, _PTR.as_pointer()))
        text = _cstring(lm, msg, f"{func.name}.err{k}")
        bd.call(set_string, [exc_obj, bd.bitcast(text, _PTR)])
        bd.ret(L.Constant(_PTR, None))
    bd.position_at_end(sw_default)
    exc_obj = bd.load(bd.bitcast(_extern_global(lm, "PyExc_SystemError"), _PTR.as_pointer()))
    text = _cstring(lm, "lldiff: unknown error status from native code", f"{func.name}.errx")
    bd.call(set_string, [exc_obj, bd.bitcast(text, _PTR)])
    bd.ret(L.Constant(_PTR, None))

    bd.position_at_end(good)
    boxed = []
    for t, s in zip(func.result_types, slots):
        if t.is_memref:
            boxed.append(_box_array(lm, bd, t, bd.load(s)))
        else:
            boxed.append(_box(lm, bd, t, bd.load(s)))
    if alloc:  # the arrays were made here: (results..., gradient or (g1, g2, ...))
        made_here = fn.append_basic_block("ok.allocated")
        given = fn.append_basic_block("ok.given")
        bd.cbranch(short, made_here, given)
        bd.position_at_end(made_here)
        grads = [boxed[k] if k >= 0 else made[-k - 1] for k in alloc[2]]
        items = boxed[:alloc[0]] + [grads[0] if len(grads) == 1 else _tuple(lm, bd, grads)]
        bd.ret(_tuple(lm, bd, items))
        bd.position_at_end(given)
    group = func.attrs.get("py_group")
    if group is not None:  # results group..end as one nested tuple: (value, (g1, g2, ...))
        boxed = boxed[:group] + [_tuple(lm, bd, boxed[group:])]
    if len(boxed) == 1:
        bd.ret(boxed[0])
    elif not boxed:
        build = _extern_fn(lm, "Py_BuildValue", _PTR, [_PTR], var_arg=True)
        empty = _cstring(lm, "", f"{func.name}.none")
        bd.ret(bd.call(build, [bd.bitcast(empty, _PTR)]))
    else:
        bd.ret(_tuple(lm, bd, boxed))

    bd.position_at_end(fallback)
    bd.ret(bd.call(vectorcall, [self_, args, nargsf, kwnames]))
    return fn


# numpy's PyArrayObject_fields and PyArray_Descr (stable in NumPy 1.x and 2.x; checked by
# tests/test_arrays.py against the running numpy): byte offsets of the fields read here.
_ND_DATA, _ND_NDIM, _ND_DIMS, _ND_STRIDES, _ND_DESCR, _ND_FLAGS = 16, 24, 32, 40, 56, 64
_DESCR_BYTEORDER, _DESCR_TYPE_NUM = 26, 28
_C_CONTIGUOUS, _ALIGNED, _WRITEABLE = 0x1, 0x100, 0x400
# element type -> numpy type numbers (int64 is NPY_LONG or NPY_LONGLONG on LP64 platforms)
_TYPE_NUMS = {"f64": (12,), "f32": (11,), "i64": (7, 9)}


def _unbox_array(fn, bd, obj, t, writes, nxt, fallback, i):
    """The memref struct of ndarray `obj`, after checking its type, element type, rank,
    layout, alignment and (if the function writes it) writeability; else the slow path."""
    i8, i32 = L.IntType(8), L.IntType(32)

    def field(base, off, ty):
        return _field(bd, base, off, ty)

    def check(cond, name):
        ok = fn.append_basic_block(f"arg{i}.{name}")
        bd.cbranch(cond, ok, fallback)
        bd.position_at_end(ok)

    nd_type = _extern_global(fn.module, NDARRAY_TYPE)
    check(bd.icmp_unsigned("==", field(obj, 8, _PTR), nd_type), "ndarray")
    descr = field(obj, _ND_DESCR, _PTR)
    num = field(descr, _DESCR_TYPE_NUM, i32)
    good = None
    for k in _TYPE_NUMS[str(t.elem)]:
        c = bd.icmp_signed("==", num, L.Constant(i32, k))
        good = c if good is None else bd.or_(good, c)
    native = bd.icmp_unsigned("!=", field(descr, _DESCR_BYTEORDER, i8), L.Constant(i8, ord(">")))
    check(bd.and_(good, native), "dtype")
    check(bd.icmp_signed("==", field(obj, _ND_NDIM, i32), L.Constant(i32, t.rank)), "ndim")
    need = _ALIGNED | (_C_CONTIGUOUS if t.contiguous else 0) | (_WRITEABLE if writes else 0)
    flags = field(obj, _ND_FLAGS, i32)
    check(bd.icmp_signed("==", bd.and_(flags, L.Constant(i32, need)), L.Constant(i32, need)),
          "flags")
    m = _memref(bd, obj, t)
    bd.branch(nxt)
    bd.position_at_end(nxt)
    return m


def _field(bd, base, off, ty):
    p = bd.gep(base, [L.Constant(_I64, off)])
    return bd.load(bd.bitcast(p, ty.as_pointer()))


def _memref(bd, obj, t):
    """The memref struct (data, shape, strides in elements) of an ndarray already checked."""
    st = llvm_type(t)
    m = L.Constant(st, None)
    m = bd.insert_value(m, bd.bitcast(_field(bd, obj, _ND_DATA, _PTR), st.elements[0]), 0)
    dims, strides = _field(bd, obj, _ND_DIMS, _PTR), _field(bd, obj, _ND_STRIDES, _PTR)
    size = L.Constant(_I64, t.elem.width // 8)
    for k in range(t.rank):
        m = bd.insert_value(m, _field(bd, dims, 8 * k, _I64), [1, k])
        m = bd.insert_value(m, bd.sdiv(_field(bd, strides, 8 * k, _I64), size), [2, k])
    return m


def _shadow(fn, bd, args, primal, t, writes, short, fallback, i, made):
    """(memref, owned array or NULL) of shadow argument `i`: the array passed, or, in a call
    with the primal arguments only (`short`), numpy.zeros(x.shape, x.dtype) for the primal
    array x = args[primal] -- already checked to be a plain aligned ndarray of `t`'s dtype
    and rank. A failed allocation releases the arrays `made` so far and returns NULL."""
    lm = fn.module
    given = fn.append_basic_block(f"arg{i}.given")
    make = fn.append_basic_block(f"arg{i}.make")
    done = fn.append_basic_block(f"arg{i}.shadow")
    bd.cbranch(short, make, given)

    bd.position_at_end(given)
    from_given = fn.append_basic_block(f"arg{i}.checked")
    m_given = _unbox_array(fn, bd, bd.load(bd.gep(args, [L.Constant(_I64, i)])), t, writes,
                           from_given, fallback, i)
    bd.branch(done)

    bd.position_at_end(make)
    x = bd.load(bd.gep(args, [L.Constant(_I64, primal)]))
    from_long = _extern_fn(lm, "PyLong_FromLongLong", _PTR, [_I64])
    dims = _field(bd, x, _ND_DIMS, _PTR)
    sizes = [bd.call(from_long, [_field(bd, dims, 8 * k, _I64)]) for k in range(t.rank)]
    shape = sizes[0] if t.rank == 1 else _tuple(lm, bd, sizes)
    argv = bd.alloca(_PTR, size=2)
    bd.store(shape, argv)
    bd.store(_field(bd, x, _ND_DESCR, _PTR), bd.gep(argv, [L.Constant(_I64, 1)]))
    vectorcall = _extern_fn(lm, "PyObject_Vectorcall", _PTR, [_PTR, _PTR.as_pointer(), _I64,
                                                               _PTR])
    new = bd.call(vectorcall, [_extern_global(lm, NUMPY_ZEROS), argv, L.Constant(_I64, 2),
                               L.Constant(_PTR, None)])
    bd.call(_extern_fn(lm, "Py_DecRef", L.VoidType(), [_PTR]), [shape])
    failed = fn.append_basic_block(f"arg{i}.nomem")
    got = fn.append_basic_block(f"arg{i}.made")
    bd.cbranch(bd.icmp_unsigned("==", new, L.Constant(_PTR, None)), failed, got)
    bd.position_at_end(failed)
    _release(lm, bd, made)
    bd.ret(L.Constant(_PTR, None))
    bd.position_at_end(got)
    m_made = _memref(bd, new, t)
    bd.branch(done)

    bd.position_at_end(done)
    m = bd.phi(m_given.type)
    m.add_incoming(m_given, from_given)
    m.add_incoming(m_made, got)
    obj = bd.phi(_PTR)
    obj.add_incoming(L.Constant(_PTR, None), from_given)
    obj.add_incoming(new, got)
    return m, obj


def _release(lm, bd, objs):
    decref = _extern_fn(lm, "Py_DecRef", L.VoidType(), [_PTR])  # (NULL is allowed)
    for o in objs:
        bd.call(decref, [o])


def _box_array(lm, bd, t, m):
    """A numpy array owning the block of returned array `m`: boxer(block, type_num, *shape)
    (NULL, with the exception set, if the boxer fails)."""
    vectorcall = _extern_fn(lm, "PyObject_Vectorcall", _PTR, [_PTR, _PTR.as_pointer(), _I64,
                                                               _PTR])
    from_long = _extern_fn(lm, "PyLong_FromLongLong", _PTR, [_I64])
    decref = _extern_fn(lm, "Py_DecRef", L.VoidType(), [_PTR])
    data = bd.ptrtoint(bd.extract_value(m, 0), _I64)
    ints = [bd.sub(data, L.Constant(_I64, 16)), L.Constant(_I64, _TYPE_NUMS[str(t.elem)][0])]
    ints += [bd.extract_value(m, [1, k]) for k in range(t.rank)]
    argv = bd.alloca(_PTR, size=len(ints))
    objs = []
    for k, v in enumerate(ints):
        o = bd.call(from_long, [v])
        objs.append(o)
        bd.store(o, bd.gep(argv, [L.Constant(_I64, k)]))
    fn = _extern_global(lm, ARRAY_BOXER)
    out = bd.call(vectorcall, [fn, argv, L.Constant(_I64, len(ints)), L.Constant(_PTR, None)])
    for o in objs:
        bd.call(decref, [o])
    return out


def _tuple(lm, bd, items):
    tuple_new = _extern_fn(lm, "PyTuple_New", _PTR, [_I64])
    set_item = _extern_fn(lm, "PyTuple_SetItem", L.IntType(32), [_PTR, _I64, _PTR])
    tup = bd.call(tuple_new, [L.Constant(_I64, len(items))])
    for i, item in enumerate(items):
        bd.call(set_item, [tup, L.Constant(_I64, i), item])
    return tup


def _box(lm, bd, t, v):
    if t is F64:
        return bd.call(_extern_fn(lm, "PyFloat_FromDouble", _PTR, [L.DoubleType()]), [v])
    if t is I64:
        return bd.call(_extern_fn(lm, "PyLong_FromLongLong", _PTR, [_I64]), [v])
    if t is I1:
        fn = _extern_fn(lm, "PyBool_FromLong", _PTR, [L.IntType(64)])
        return bd.call(fn, [bd.zext(v, _I64)])
    raise TypeError(f"cannot return {t} to Python")
