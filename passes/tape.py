"""Tape materialization: gives the abstract `ad.push`/`ad.pop` ops of passes/vjp.py memory.

Each loop the reverse pass records (attribute `tape = k`) gets one tape handle:

* an `scf.for` at the top level of the function gets a buffer reserved before the loop for
  exactly trip count x bytes per iteration (`"ad.tape"(%bytes)`): pushes need no capacity
  check;
* a tape with a capacity in the function's attribute `tape_capacity` (tape id -> bytes:
  checkpoint.py's snapshots) gets a buffer of exactly that size, reserved on the heap at
  function entry (attribute `heap`: the runtime's tape counters then show it);
* every other loop (`scf.while`, whose trip count is unknown until it ends, and loops nested
  in loops or branches) gets a stack (`"ad.tape"()`) made at function entry: it starts in a
  fixed buffer on the native stack and moves to the heap, doubling, when it outgrows it.

Pushes and pops become `ad.tape.push`/`ad.tape.pop` on the handle, and `ad.tape.free` before
the return releases any heap memory (the code generator also frees on error returns). Both
kinds live in the call's own stack frame: a tape is per call, so threads never share one.

IR -> IR only.
"""

from lldiff.ir import I64, TAPE, Builder, Op

from .cache import type_bytes
from .rewrite import all_blocks, trip_count

__all__ = ["materialize_tapes"]


def materialize_tapes(module):
    for f in module:
        _materialize(f)
    return module


def _materialize(func):
    loops = {}   # tape id -> loop op
    record = {}  # tape id -> bytes pushed per iteration
    for op in func.walk():
        if op.name in ("scf.for", "scf.while") and "tape" in op.attrs:
            loops[op.attrs["tape"]] = op
        elif op.name == "ad.push":
            k = op.attrs["tape"]
            record[k] = record.get(k, 0) + type_bytes(op.operands[0].type)
    if not record:
        return
    top = func.body.block
    handles = {}
    entry = []
    capacity = func.attrs.get("tape_capacity", {})
    for k in sorted(record):  # a loop with nothing to record gets no tape
        loop = loops.get(k)
        if k in capacity:
            b = _ListBuilder(entry, func.loc)
            h = b.create("ad.tape", [b.const(capacity[k], I64)], {"tape": k, "heap": True},
                         hint=f"tape{k}").result
        elif loop is not None and loop.name == "scf.for" and loop.parent is top:
            # a buffer sized by the trip count, made right before the loop
            pre = []
            b = _ListBuilder(pre, loop.loc)
            n = trip_count(b, *loop.operands[:3])
            nbytes = b.value("arith.muli", n, b.const(record.get(k, 0), I64), hint="bytes")
            h = b.create("ad.tape", [nbytes], {"tape": k}, hint=f"tape{k}").result
            i = top.ops.index(loop)
            for op in pre:
                op.parent = top
            top.ops[i:i] = pre
        else:
            op = Op("ad.tape", [], [TAPE], {"tape": k}, loc=func.loc)
            h = op.result
            h.hint = f"tape{k}"
            entry.append(op)
        handles[k] = h
    for op in entry:
        op.parent = top
    top.ops[0:0] = entry
    for block in all_blocks(func):
        for i, op in enumerate(block.ops):
            if op.name == "ad.push":
                new = Op("ad.tape.push", [handles[op.attrs["tape"]]] + op.operands, [],
                         {"tape": op.attrs["tape"]}, loc=op.loc)
            elif op.name == "ad.pop":
                new = Op("ad.tape.pop", [handles[op.attrs["tape"]]], [op.result.type],
                         dict(op.attrs), loc=op.loc)
                new.results[0] = op.result  # keep the value (and its uses)
                op.result.op = new
            else:
                continue
            new.parent = block
            block.ops[i] = new
    ret = top.ops.pop()
    for k in sorted(handles):
        free = Op("ad.tape.free", [handles[k]], [], {"tape": k}, loc=ret.loc)
        free.parent = top
        top.ops.append(free)
    top.ops.append(ret)


class _ListBuilder(Builder):
    """A Builder that appends to a plain list (ops spliced into a block afterwards)."""

    __slots__ = ("ops",)

    def __init__(self, ops, loc):
        super().__init__(None, loc)
        self.ops = ops

    def insert(self, op):
        if op.loc is None:
            op.loc = self.loc
        self.ops.append(op)
        return op
