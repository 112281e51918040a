"""NVPTX: the same typed IR as a GPU map kernel, in LLVM IR for `nvptx64-nvidia-cuda`.

The functions are emitted by llvm.py with target "nvptx" (math through libdevice's `__nv_*`,
never `llvm.sin` and friends, which abort LLVM's NVPTX backend; tapes confined to their
per-thread inline buffer), all internal; one kernel, the only external symbol, maps the
function over arrays in a grid-stride loop:

`void @<func>_kernel(i64 n, (ptr addrspace(1) in_k, i64 stride_k) per argument,
ptr addrspace(1) out_k per result, ptr addrspace(1) failed)`: thread t handles elements
t, t + gridsize, ...; argument k of element i is at `in_k + i * stride_k` (strides in
elements, 0 broadcasts a scalar; bools one byte), result k goes to `out_k + i` (contiguous).
An element whose call fails (a Python exception on the CPU) lowers `*failed` (set to n by the
host) to its index with an atomic min; the host recomputes that element on the CPU to raise
the exact exception, which the CPU map would raise for it.

With `emulate=True` the same kernel is built for the host instead: host math (libm), the
GPU-thread tape semantics, and the thread registers as four leading i32 parameters
`(tid, ntid, ctaid, nctaid)`, so that a test harness can run each thread of a launch in turn
on the CPU (no GPU needed to check the kernel's logic and the host side of a launch).

Owns the kernel ABI and the target description; scalars only. Linking libdevice and emitting
PTX need llvmlite.binding: lldiff.runtime.cuda does it. Must not import llvmlite.binding.
"""

from llvmlite import ir as L

from ..ir import I1
from .llvm import I32, emit_module, llvm_type

__all__ = ["emit_kernel_module", "kernel_name", "TRIPLE", "DATA_LAYOUT"]

TRIPLE = "nvptx64-nvidia-cuda"
DATA_LAYOUT = "e-i64:64-i128:128-v16:16-v32:32-n16:32:64"

_I64 = L.IntType(64)


def kernel_name(symbol):
    """The kernel's PTX name: PTX identifiers have no dots (internal functions are renamed by
    LLVM; an external one must be valid already)."""
    return "".join(c if c.isalnum() else "_" for c in symbol) + "_kernel"


def _global_ptr(t):
    return L.PointerType(L.IntType(8) if t is I1 else llvm_type(t), addrspace=1)


def emit_kernel_module(module, symbol, name="lldiff", fastmath=False, emulate=False):
    """LLVM IR text (NVPTX, or the host's with `emulate`) of `module` with a map kernel of
    `symbol`; the error table."""
    lm, errors = emit_module(module, set(), name, fastmath,
                             target="gpu-emulated" if emulate else "nvptx")
    if not emulate:
        lm.triple = TRIPLE
        lm.data_layout = DATA_LAYOUT
    _emit_kernel(lm, module[symbol], emulate)
    return str(lm), list(errors.entries)


_SREGS = ("tid.x", "ntid.x", "ctaid.x", "nctaid.x")


def _sreg(lm, fn, bd, name, emulate):
    if emulate:
        return bd.zext(fn.args[_SREGS.index(name)], _I64)
    reader = lm.globals.get(f"llvm.nvvm.read.ptx.sreg.{name}") or L.Function(
        lm, L.FunctionType(L.IntType(32), []), name=f"llvm.nvvm.read.ptx.sreg.{name}")
    return bd.zext(bd.call(reader, []), _I64)


def _emit_kernel(lm, func, emulate=False):
    native = lm.globals[func.name]
    params = [I32] * len(_SREGS) if emulate else []
    params.append(_I64)
    for a in func.args:
        params += [_global_ptr(a.type), _I64]
    params += [_global_ptr(t) for t in func.result_types]
    params.append(L.PointerType(_I64, addrspace=1))
    fn = L.Function(lm, L.FunctionType(L.VoidType(), params), name=kernel_name(func.name))
    if not emulate:
        lm.add_named_metadata("nvvm.annotations", [fn, L.MetaDataString(lm, "kernel"),
                                                   L.Constant(I32, 1)])
    kargs = fn.args[len(_SREGS):] if emulate else fn.args
    n = kargs[0]
    ins = [(kargs[1 + 2 * k], kargs[2 + 2 * k]) for k in range(len(func.args))]
    outs = kargs[1 + 2 * len(func.args):-1]
    failed = kargs[-1]
    entry, head, body, ok, bad, done = (fn.append_basic_block(s) for s in (
        "entry", "head", "body", "ok", "bad", "done"))
    bd = L.IRBuilder(entry)
    slots = [bd.alloca(llvm_type(t)) for t in func.result_types]
    def sreg(name):
        return _sreg(lm, fn, bd, name, emulate)
    first = bd.add(bd.mul(sreg("ctaid.x"), sreg("ntid.x")), sreg("tid.x"))
    stride = bd.mul(sreg("ntid.x"), sreg("nctaid.x"))
    bd.branch(head)
    bd.position_at_end(head)
    i = bd.phi(_I64, name="i")
    i.add_incoming(first, entry)
    bd.cbranch(bd.icmp_signed("<", i, n), body, done)
    bd.position_at_end(body)
    args = []
    for a, (base, step) in zip(func.args, ins):
        v = bd.load(bd.gep(base, [bd.mul(i, step)]))
        args.append(bd.trunc(v, L.IntType(1)) if a.type is I1 else v)
    status = bd.call(native, args + slots)
    bd.cbranch(bd.icmp_signed("!=", status, L.Constant(I32, 0)), bad, ok)
    bd.position_at_end(bad)
    bd.atomic_rmw("min", failed, i, "monotonic")
    bd.branch(ok)  # the host raises for the first failed element; the rest still run
    bd.position_at_end(ok)
    for t, base, slot in zip(func.result_types, outs, slots):
        v = bd.load(slot)
        bd.store(bd.zext(v, L.IntType(8)) if t is I1 else v, bd.gep(base, [i]))
    i.add_incoming(bd.add(i, stride), ok)
    bd.branch(head)
    bd.position_at_end(done)
    bd.ret_void()
    return fn
