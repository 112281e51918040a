"""Elementwise map kernels: a native loop applying a compiled scalar function over arrays.

`i32 @<func>.map(i64 start, i64 end, ptr ins, ptr in_strides, ptr outs, ptr out_strides,
ptr failed)`: for i in [start, end) it reads argument k from `ins[k] + i * in_strides[k]`
(strides in elements; 0 broadcasts a scalar), calls the function, and writes result k to
`outs[k] + i * out_strides[k]`. It returns 0, or the status of the first element that failed
(an entry of the module's error table) with that element's index in `*failed`. No Python
object is touched, so a caller may release the GIL around it (ctypes does).

`i32 @<kernel>.worker(i64 n, i64 chunk, ptr next, ptr ins, ptr in_strides, ptr outs,
ptr out_strides, ptr failed)` (`emit_worker`) runs a kernel on one thread of several: it
takes chunks [lo, lo + chunk) from the counter all threads share (`*next`, an atomic add)
until `n`, and stops at the first chunk that fails, returning its status. One foreign call
per thread, however many chunks: no GIL between chunks. Chunks are taken in increasing
order, so when a thread fails every earlier chunk was taken by some thread, which ran it
whole or failed earlier: the least failing index over the threads is the scalar loop's.

Owns the kernel ABI; scalar arguments and results only (f64, i64, i1 stored as one byte).
Must not import llvmlite.binding.
"""

from llvmlite import ir as L

from ..ir import I1
from .llvm import I32, llvm_type

__all__ = ["emit_map", "emit_worker", "map_name", "worker_name"]

_I64 = L.IntType(64)
_PTR = L.IntType(8).as_pointer()


def map_name(symbol):
    return f"{symbol}.map"


def worker_name(symbol):
    return f"{symbol}.worker"


def _memory_type(t):
    return L.IntType(8) if t is I1 else llvm_type(t)


def emit_map(lm, func):
    native = lm.globals[func.name]
    fnty = L.FunctionType(I32, [_I64, _I64, _PTR.as_pointer(), _I64.as_pointer(),
                                _PTR.as_pointer(), _I64.as_pointer(), _I64.as_pointer()])
    fn = L.Function(lm, fnty, name=map_name(func.name))
    start, end, ins, in_strides, outs, out_strides, failed = fn.args
    entry, head, body, done, fail = (fn.append_basic_block(s) for s in (
        "entry", "head", "body", "done", "fail"))
    bd = L.IRBuilder(entry)

    def typed_base(table, idx, t):
        p = bd.load(bd.gep(table, [L.Constant(_I64, idx)]))
        return bd.bitcast(p, _memory_type(t).as_pointer())

    in_bases = [typed_base(ins, j, a.type) for j, a in enumerate(func.args)]
    in_steps = [bd.load(bd.gep(in_strides, [L.Constant(_I64, j)])) for j in range(len(func.args))]
    out_bases = [typed_base(outs, j, t) for j, t in enumerate(func.result_types)]
    out_steps = [bd.load(bd.gep(out_strides, [L.Constant(_I64, j)]))
                 for j in range(len(func.result_types))]
    slots = [bd.alloca(llvm_type(t)) for t in func.result_types]
    bd.branch(head)
    bd.position_at_end(head)
    i = bd.phi(_I64, name="i")
    i.add_incoming(start, entry)
    bd.cbranch(bd.icmp_signed("<", i, end), body, done)
    bd.position_at_end(body)
    args = []
    for a, base, step in zip(func.args, in_bases, in_steps):
        v = bd.load(bd.gep(base, [bd.mul(i, step)]))
        args.append(bd.trunc(v, L.IntType(1)) if a.type is I1 else v)
    status = bd.call(native, args + slots)
    ok = fn.append_basic_block("ok")
    bd.cbranch(bd.icmp_signed("!=", status, L.Constant(I32, 0)), fail, ok)
    bd.position_at_end(ok)
    for t, base, step, slot in zip(func.result_types, out_bases, out_steps, slots):
        v = bd.load(slot)
        if t is I1:
            v = bd.zext(v, L.IntType(8))
        bd.store(v, bd.gep(base, [bd.mul(i, step)]))
    i.add_incoming(bd.add(i, L.Constant(_I64, 1)), ok)
    bd.branch(head)
    bd.position_at_end(done)
    bd.ret(L.Constant(I32, 0))
    bd.position_at_end(fail)
    bd.store(i, failed)
    bd.ret(status)
    return fn


def emit_worker(lm, kernel):
    """The worker (module docstring) of map kernel `kernel` (an LLVM function)."""
    fnty = L.FunctionType(I32, [_I64, _I64, _I64.as_pointer()] + list(
        kernel.function_type.args[2:]))
    fn = L.Function(lm, fnty, name=worker_name(kernel.name))
    n, chunk, nxt, ins, in_strides, outs, out_strides, failed = fn.args
    entry, take, run, done = (fn.append_basic_block(s) for s in ("entry", "take", "run",
                                                                  "done"))
    bd = L.IRBuilder(entry)
    bd.branch(take)
    bd.position_at_end(take)
    lo = bd.atomic_rmw("add", nxt, chunk, "monotonic")
    bd.cbranch(bd.icmp_signed("<", lo, n), run, done)
    bd.position_at_end(run)
    hi = bd.add(lo, chunk)
    hi = bd.select(bd.icmp_signed("<", hi, n), hi, n)
    status = bd.call(kernel, [lo, hi, ins, in_strides, outs, out_strides, failed])
    bd.cbranch(bd.icmp_signed("!=", status, L.Constant(I32, 0)), done, take)
    bd.position_at_end(done)
    result = bd.phi(I32)
    result.add_incoming(L.Constant(I32, 0), take)
    result.add_incoming(status, run)
    bd.ret(result)
    return fn
