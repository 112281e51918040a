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

`@<kernel>.serve` and `@<kernel>.run` (`emit_pool`) are the two sides of the native thread
pool batch.py runs workers on: helpers that wait in pthread conditions, not for the GIL.

Owns the kernel ABI; scalar arguments and results only (f64, i64, i1 stored as one byte).
Must not import llvmlite.binding.
"""

from llvmlite import ir as L

from ..ir import I1
from .llvm import I32, llvm_type

__all__ = ["emit_map", "emit_pool", "emit_worker", "map_name", "run_name", "serve_name",
           "worker_name"]

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


# --- the native thread pool -------------------------------------------------------------
# Layouts shared with batch.py's _NativePool (repeated there: it must not import codegen).
POOL_BYTES = 256  # the pthread mutex at 0, conditions "wake" and "done" (64 bytes each holds
POOL_WAKE, POOL_DONE, POOL_JOB = 64, 128, 192  # glibc's and macOS's), the offered job (ptr)
# job: i64 slots
J_WORKER, J_N, J_CHUNK, J_COUNTER, J_INS, J_IN_STRIDES, J_OUTS, J_OUT_STRIDES = range(8)
J_WANTED, J_TAKEN, J_FINISHED, J_RESULTS = 8, 9, 10, 11
JOB_SLOTS = 12


def run_name(symbol):
    return f"{symbol}.run"


def serve_name(symbol):
    return f"{symbol}.serve"


def emit_pool(lm, kernel):
    """The native pool's two sides for map kernel `kernel`'s module (generic: they call the
    worker a job names, so the helpers may run any module's `serve`):

    `void @<kernel>.serve(ptr pool)` is a helper thread's whole life, entered once without
    the GIL and never left: under the pool's mutex it waits on "wake" until the offered job
    (at POOL_JOB) has taken < wanted, takes slot taken + 1, runs the job's worker unlocked
    into its result slot (status, failed index), counts itself finished and, the last
    running, broadcasts "done".

    `void @<kernel>.run(ptr pool, ptr job, i64 k)` is the caller's: it offers `job` to k
    helpers (k signals), runs the worker itself in slot 0, then withdraws the offer
    (wanted = taken: a helper that has not started yet will not) and waits for the helpers
    that started. Between the calls the helpers sleep in the kernel: one wake per helper,
    no GIL handoffs (the Python pool's helpers started one GIL handoff apart, ~1 ms for 15).

    A job is JOB_SLOTS i64: worker, n, chunk, the chunk counter, ins, in_strides, outs,
    out_strides (the worker's arguments), wanted, taken, finished, and a pointer to
    2 * (k + 1) i64 results. Several callers may share a pool: a new offer replaces the
    last, whose caller then finishes with the helpers it already has."""
    void, i64p = L.VoidType(), _I64.as_pointer()
    lock, unlock, wait, signal, broadcast = (
        lm.globals.get(name) or L.Function(lm, L.FunctionType(I32, args), name)
        for name, args in (("pthread_mutex_lock", [_PTR]), ("pthread_mutex_unlock", [_PTR]),
                           ("pthread_cond_wait", [_PTR, _PTR]), ("pthread_cond_signal", [_PTR]),
                           ("pthread_cond_broadcast", [_PTR])))
    worker_ty = L.FunctionType(I32, [_I64, _I64, i64p] + list(kernel.function_type.args[2:]))

    def at(bd, base, offset):
        return bd.gep(base, [L.Constant(_I64, offset)])

    def slot(bd, job, k):
        return bd.gep(job, [L.Constant(_I64, k)])

    def fields(bd, pool):
        """The pool's mutex, "wake", "done" and offered-job pointer."""
        return ([at(bd, pool, o) for o in (0, POOL_WAKE, POOL_DONE)] +
                [bd.bitcast(at(bd, pool, POOL_JOB), i64p.as_pointer())])

    def run_worker(bd, job, index):
        """Call the job's worker with result slot `index` (an i64)."""
        results = bd.inttoptr(bd.load(slot(bd, job, J_RESULTS)), i64p)
        args = [bd.load(slot(bd, job, J_N)), bd.load(slot(bd, job, J_CHUNK)),
                slot(bd, job, J_COUNTER)]
        for k, t in zip((J_INS, J_IN_STRIDES, J_OUTS, J_OUT_STRIDES),
                        worker_ty.args[3:7]):
            args.append(bd.inttoptr(bd.load(slot(bd, job, k)), t))
        two = bd.mul(index, L.Constant(_I64, 2))
        args.append(bd.gep(results, [bd.add(two, L.Constant(_I64, 1))]))
        fn = bd.inttoptr(bd.load(slot(bd, job, J_WORKER)), worker_ty.as_pointer())
        status = bd.call(fn, args)
        bd.store(bd.sext(status, _I64), bd.gep(results, [two]))

    # serve
    fn = L.Function(lm, L.FunctionType(void, [_PTR]), name=serve_name(kernel.name))
    pool, = fn.args
    entry, look, sleep, take = (fn.append_basic_block(s) for s in ("entry", "look", "sleep",
                                                                    "take"))
    bd = L.IRBuilder(entry)
    mutex, wake, done, offered = fields(bd, pool)
    bd.call(lock, [mutex])
    bd.branch(look)
    bd.position_at_end(look)
    job = bd.load(offered)
    has = fn.append_basic_block("has")
    bd.cbranch(bd.icmp_unsigned("==", job, L.Constant(i64p, None)), sleep, has)
    bd.position_at_end(has)
    taken = bd.load(slot(bd, job, J_TAKEN))
    bd.cbranch(bd.icmp_signed("<", taken, bd.load(slot(bd, job, J_WANTED))), take, sleep)
    bd.position_at_end(sleep)
    bd.call(wait, [wake, mutex])
    bd.branch(look)
    bd.position_at_end(take)
    mine = bd.add(taken, L.Constant(_I64, 1))
    bd.store(mine, slot(bd, job, J_TAKEN))
    bd.call(unlock, [mutex])
    run_worker(bd, job, mine)
    bd.call(lock, [mutex])
    finished = bd.add(bd.load(slot(bd, job, J_FINISHED)), L.Constant(_I64, 1))
    bd.store(finished, slot(bd, job, J_FINISHED))
    last, back = fn.append_basic_block("last"), fn.append_basic_block("back")
    bd.cbranch(bd.icmp_signed("==", finished, bd.load(slot(bd, job, J_TAKEN))), last, back)
    bd.position_at_end(last)
    bd.call(broadcast, [done])
    bd.branch(back)
    bd.position_at_end(back)
    bd.branch(look)

    # run
    fn = L.Function(lm, L.FunctionType(void, [_PTR, i64p, _I64]), name=run_name(kernel.name))
    pool, job, k = fn.args
    entry = fn.append_basic_block("entry")
    bd = L.IRBuilder(entry)
    mutex, wake, done, offered = fields(bd, pool)
    zero = L.Constant(_I64, 0)
    bd.call(lock, [mutex])
    bd.store(k, slot(bd, job, J_WANTED))
    bd.store(zero, slot(bd, job, J_TAKEN))
    bd.store(zero, slot(bd, job, J_FINISHED))
    bd.store(job, offered)
    bd.call(unlock, [mutex])
    with _counted_loop(bd, fn, k):
        bd.call(signal, [wake])
    run_worker(bd, job, zero)
    bd.call(lock, [mutex])
    taken = bd.load(slot(bd, job, J_TAKEN))
    bd.store(taken, slot(bd, job, J_WANTED))
    mine = bd.icmp_unsigned("==", bd.load(offered), job)
    bd.store(bd.select(mine, L.Constant(i64p, None), bd.load(offered)), offered)
    check, sleep, out = (fn.append_basic_block(s) for s in ("check", "sleep", "out"))
    bd.branch(check)
    bd.position_at_end(check)
    bd.cbranch(bd.icmp_signed("<", bd.load(slot(bd, job, J_FINISHED)), taken), sleep, out)
    bd.position_at_end(sleep)
    bd.call(wait, [done, mutex])
    bd.branch(check)
    bd.position_at_end(out)
    bd.call(unlock, [mutex])
    bd.ret_void()


class _counted_loop:
    """`with _counted_loop(bd, fn, k):` emits its body k times (k an i64 value)."""

    def __init__(self, bd, fn, k):
        self.bd, self.fn, self.k = bd, fn, k

    def __enter__(self):
        bd, fn = self.bd, self.fn
        self.pre = bd.block
        self.head, self.body, self.after = (fn.append_basic_block(s) for s in (
            "loop.head", "loop.body", "loop.after"))
        bd.branch(self.head)
        bd.position_at_end(self.head)
        self.i = bd.phi(_I64)
        self.i.add_incoming(L.Constant(_I64, 0), self.pre)
        bd.cbranch(bd.icmp_signed("<", self.i, self.k), self.body, self.after)
        bd.position_at_end(self.body)

    def __exit__(self, *exc):
        bd = self.bd
        self.i.add_incoming(bd.add(self.i, L.Constant(_I64, 1)), bd.block)
        bd.branch(self.head)
        bd.position_at_end(self.after)
