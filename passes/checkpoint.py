"""Binomial checkpointing (Griewank's revolve) of long loops in reverse mode.

Plain reverse mode (vjp.py) records every iteration of a loop on a tape: memory grows with
the trip count. With `checkpoints=c`, a top-level loop that qualifies (below) keeps at most c
*snapshots* of its carried state instead, and the reverse sweep recomputes what it needs from
them, as revolve prescribes:

* forward sweep: the primal loop, no tape. A `for` loop (trip count n known at entry) stores
  the snapshots revolve's first forward sweep takes and yields the state before its last
  iteration as well; a `while` loop (n unknown until it ends) only counts its iterations,
  and its reverse sweep starts revolve from the initial state (an offline schedule once n is
  known: one more forward sweep than revolve on a `for`, the same memory bound).
* reverse sweep: a driver loop (`scf.while`) running revolve's actions on a stack of
  snapshots (ad.push/ad.pop on a buffer of exactly c snapshots): *restore* the newest
  snapshot; *turn* iteration k (run it once recording a one-iteration tape, then reverse it:
  vjp.py's `forward_window`/`reverse_window`); *takeshot*; *advance* the state from one
  iteration to another without a tape, to the point `lldiff.revolve.split` chooses (revolve's
  rule, below). Each snapshot holds the state, its iteration and the previous snapshot's
  iteration, so the stack needs no other memory.

Work: revolve's optimum, p(n, c) = r n - C(c + r, r - 1) plain iterations for n iterations
and c snapshots (r the least with C(c + r, c) >= n), counting the n - 1 of the first forward
sweep; the reverse sweep of a `for` recomputes p(n, c) - (n - 1) of them, that of a `while`
p(n, c). `ad.count` adds them to the runtime's `recomputed_steps` counter (and the snapshots
taken to `snapshots`).

A loop qualifies when it is at the top of the function, active, carries scalars only, and
neither it nor anything in it writes or allocates memory or reads an array the function
writes (its iterations must be repeatable from the carried state alone). Other loops keep
their full tape. IR -> IR only.
"""

from math import comb

from lldiff.ir import I64, Builder, Func, Op

from .cache import type_bytes
from .rewrite import clone_op, if_op, trip_count

__all__ = ["qualifies", "forward", "reverse", "revolve_steps", "split_func", "SPLIT"]

SPLIT = "lldiff.revolve.split"


def revolve_steps(n, c):
    """p(n, c): the fewest plain (unrecorded) loop iterations with which reverse mode can run
    `n` iterations backwards holding at most `c` snapshots (the initial state is one of
    them), counting the n - 1 of the first forward sweep (Griewank & Walther, Algorithm 799).
    """
    if n <= 1:
        return 0
    r = 0
    while comb(c + r, c) < n:
        r += 1
    return r * n - comb(c + r, r - 1)


# --- structured-control-flow helpers ------------------------------------------------------

def _for(b, lo, hi, inits, body, hints=None):
    """`scf.for j = lo to hi step 1` carrying `inits`; body(builder, j, args) -> yields."""
    region, blk = Builder().block_region([I64] + [v.type for v in inits],
                                         ["j"] + (hints or [v.hint for v in inits]))
    bb = Builder(blk, b.loc)
    bb.insert(Op("scf.yield", list(body(bb, blk.args[0], list(blk.args[1:]))), [], loc=b.loc))
    op = Op("scf.for", [lo, hi, b.const(1, I64)] + list(inits), [v.type for v in inits], {},
            [region], loc=b.loc)
    return list(b.insert(op).results)


def _while(b, inits, cond, body, hints=None):
    """`scf.while` carrying `inits`: runs body(builder, args) -> yields while
    cond(builder, args) is true."""
    types = [v.type for v in inits]
    hints = hints or [v.hint for v in inits]
    bregion, bblk = Builder().block_region(types, hints)
    bb = Builder(bblk, b.loc)
    bb.insert(Op("scf.condition", [cond(bb, list(bblk.args))] + list(bblk.args), [],
                 loc=b.loc))
    aregion, ablk = Builder().block_region(types, hints)
    ab = Builder(ablk, b.loc)
    ab.insert(Op("scf.yield", list(body(ab, list(ablk.args))), [], loc=b.loc))
    op = Op("scf.while", list(inits), types, {}, [bregion, aregion], loc=b.loc)
    return list(b.insert(op).results)


def _i(b, name, x, y, **attrs):
    return b.value(name, x, y, **attrs)


# --- revolve's rule -----------------------------------------------------------------------

def split_func(module):
    """Add `lldiff.revolve.split(capo, fine, ds) -> i64` to `module` unless present: where
    revolve advances to from iteration `capo` when iterations capo..fine-1 are still to be
    reversed and `ds` snapshots (the one at capo included) are available for them. The rule of
    revolve.c (Griewank & Walther, ACM TOMS 26(1), 2000); fine - 1 when ds == 1."""
    if SPLIT in module.funcs:
        return SPLIT
    f = Func(SPLIT, [I64, I64, I64], [I64], ["capo", "fine", "ds"])
    b = Builder(f.body.block)
    capo, fine, ds = f.args
    one, zero = b.const(1, I64), b.const(0, I64)

    def general(bb):
        c = lambda v: bb.const(v, I64)  # noqa: E731
        add = lambda x, y: _i(bb, "arith.addi", x, y)  # noqa: E731
        sub = lambda x, y: _i(bb, "arith.subi", x, y)  # noqa: E731
        mul = lambda x, y: _i(bb, "arith.muli", x, y)  # noqa: E731
        div = lambda x, y: _i(bb, "arith.floordivsi", x, y)  # noqa: E731 (all operands > 0)
        cmp = lambda p, x, y: _i(bb, "arith.cmpi", x, y, pred=p)  # noqa: E731
        sel = lambda k, x, y: bb.value("arith.select", k, x, y)  # noqa: E731
        span = sub(fine, capo)

        # reps, range: the least reps with range = C(ds + reps, ds) >= span
        def grow(wb, args):
            reps, rng = args
            reps = _i(wb, "arith.addi", reps, one)
            rng = _i(wb, "arith.floordivsi",
                     _i(wb, "arith.muli", rng, _i(wb, "arith.addi", reps, ds)), reps)
            return [reps, rng]
        reps, rng = _while(bb, [c(0), c(1)],
                           lambda wb, args: _i(wb, "arith.cmpi", args[1], span, pred="slt"),
                           grow, ["reps", "range"])
        # here ds >= 2 and reps >= 1: no divisor below is zero
        bino1 = div(mul(rng, reps), add(ds, reps))
        bino2 = div(mul(bino1, ds), sub(add(ds, reps), one))
        bino3 = sel(cmp("sgt", ds, c(2)), div(mul(bino2, sub(ds, one)), sub(add(ds, reps), c(2))),
                    one)
        bino4 = div(mul(bino2, sub(reps, one)), ds)
        bino5 = sel(cmp("slt", ds, c(3)), zero,
                    sel(cmp("sgt", ds, c(3)), div(mul(bino3, sub(ds, c(2))), reps), one))
        m = sel(cmp("sle", span, add(bino1, bino3)), add(capo, bino4),
                sel(cmp("sge", span, sub(rng, bino5)), add(capo, bino1),
                    sub(sub(fine, bino2), bino3)))
        return [sel(cmp("eq", m, capo), add(capo, one), m)]

    (m,) = if_op(b, _i(b, "arith.cmpi", ds, one, pred="sle"), [I64],
               lambda bb: [_i(bb, "arith.subi", fine, one)], general)
    b.create("func.return", [m], result_types=[])
    module.add(f)
    return SPLIT


# --- which loops --------------------------------------------------------------------------

def qualifies(rev, op):
    """Whether loop `op` of the function `rev` differentiates can be checkpointed."""
    body_ops = [o for o in op.walk() if o is not op]
    if op.parent is not rev.func.body.block:
        return False
    if any(o.name in ("lldiff.store", "lldiff.alloc") or o.name.startswith("ad.")
           for o in body_ops):
        return False
    if any(o.name == "lldiff.load" and not rev.reread(o) for o in body_ops):
        return False
    if any(v.type.is_memref for v in op.results):
        return False
    if op.name == "scf.while":
        before = op.regions[0].block
        if before.terminator.operands[1:] != before.args:
            return False
    return True


# --- forward sweep ------------------------------------------------------------------------

def _state_parts(op):
    """(body block, its carried block args) of loop `op`: the state is what they carry."""
    if op.name == "scf.for":
        body = op.regions[0].block
        return body, list(body.args[1:])
    body = op.regions[1].block
    return body, list(body.args)


def step(rev, b, op, j, state):
    """Emit iteration `j` of loop `op` from `state` without a tape; return the next state.
    (A `while` iteration skips its condition: j is below the trip count.)"""
    body, carries = _state_parts(op)
    vm = dict(rev.vmap)
    if op.name == "scf.for":
        lb, _, stp = (rev.vmap[v] for v in op.operands[:3])
        vm[body.args[0]] = _i(b, "arith.addi", lb, _i(b, "arith.muli", j, stp))
    vm.update(zip(carries, state))
    for inner in body.ops[:-1]:
        b.insert(clone_op(inner, vm))
    return [vm.get(v, v) for v in body.terminator.operands]


def advance(rev, b, op, lo, hi, state):
    """Iterations lo..hi-1 of loop `op` from `state` without a tape; the state after them."""
    _, carries = _state_parts(op)
    return _for(b, lo, hi, state, lambda bb, j, args: step(rev, bb, op, j, args),
                [a.hint for a in carries])


class _Record:
    """What the forward sweep of a checkpointed loop leaves for its reverse sweep."""

    __slots__ = ("tape", "n", "capo", "state", "depth", "top", "entry")

    def __init__(self, tape, n, capo, state, depth, top, entry):
        self.tape, self.n, self.capo, self.state = tape, n, capo, state
        self.depth, self.top, self.entry = depth, top, entry


def _push_snapshot(b, tape, top, state, k):
    b.create("ad.push", [top], {"tape": tape}, result_types=[])
    for v in state:
        b.create("ad.push", [v], {"tape": tape}, result_types=[])
    b.create("ad.push", [k], {"tape": tape}, result_types=[])
    b.create("ad.count", [b.const(1, I64)], {"counter": "snapshots"}, result_types=[])


def _pop_snapshot(b, tape, types):
    """(iteration, state, previous snapshot's iteration) of the newest snapshot, removed."""
    k = b.create("ad.pop", [], {"tape": tape, "type": I64}, result_types=[I64]).result
    state = [b.create("ad.pop", [], {"tape": tape, "type": t}, result_types=[t]).result
             for t in reversed(types)][::-1]
    top = b.create("ad.pop", [], {"tape": tape, "type": I64}, result_types=[I64]).result
    return k, state, top


def forward(rev, op, b):
    """The forward sweep of checkpointed loop `op`: sets rev.vmap for its results and
    rev.ckpt[op] for its reverse sweep."""
    c = rev.checkpoints
    _, carries = _state_parts(op)
    inits = [rev.vmap[v] for v in (op.operands[3:] if op.name == "scf.for" else op.operands)]
    types = [a.type for a in carries]
    tape = next(rev.tapes)
    entry = 16 + sum(type_bytes(t) for t in types)  # a snapshot: state, iteration, link
    rev.func_attrs.setdefault("tape_capacity", {})[tape] = c * entry
    zero, one = b.const(0, I64), b.const(1, I64)
    if op.name == "scf.for":
        n = trip_count(b, *(rev.vmap[v] for v in op.operands[:3]))
        last = b.value("arith.select", _i(b, "arith.cmpi", n, zero, pred="sgt"),
                       _i(b, "arith.subi", n, one), zero, hint="last")
        split = split_func(rev.module)

        def body(bb, j, args):
            state, (depth, top, nxt) = args[:-3], args[-3:]

            def take(tb):
                _push_snapshot(tb, tape, top, state, j)
                ds = _i(tb, "arith.subi", tb.const(c, I64), depth)
                m = tb.create("func.call", [j, n, ds], {"callee": split},
                              result_types=[I64]).result
                return [_i(tb, "arith.addi", depth, tb.const(1, I64)), j, m]
            kept = if_op(bb, _i(bb, "arith.cmpi", j, nxt, pred="eq"), [I64] * 3, take,
                       lambda eb: [depth, top, nxt])
            return step(rev, bb, op, j, state) + kept
        out = _for(b, zero, last, inits + [zero, b.const(-1, I64), zero], body,
                   [a.hint for a in carries] + ["depth", "top", "next"])
        state, (depth, top, _) = out[:-3], out[-3:]
        final = advance(rev, b, op, last, n, state)
        rev.ckpt[op] = _Record(tape, n, last, state, depth, top, entry)
    else:
        # the primal while loop counting its iterations
        before = op.regions[0].block
        vm = dict(rev.vmap)

        def cond(bb, args):
            vm.update(zip(before.args, args[:-1]))
            for inner in before.ops[:-1]:
                bb.insert(clone_op(inner, vm))
            return vm.get(before.terminator.operands[0], before.terminator.operands[0])

        def body(bb, args):
            return step(rev, bb, op, None, args[:-1]) + [
                _i(bb, "arith.addi", args[-1], bb.const(1, I64))]
        out = _while(b, inits + [zero], cond, body, [a.hint for a in carries] + ["n"])
        final, n = out[:-1], out[-1]
        rev.ckpt[op] = _Record(tape, n, zero, inits, zero, b.const(-1, I64), entry)
    for r, v in zip(op.results, final):
        v.hint = r.hint
        rev.vmap[r] = v


# --- reverse sweep ------------------------------------------------------------------------

def reverse(rev, op, adj, b):
    """The reverse sweep of checkpointed loop `op`: revolve's driver loop. Adds the adjoints
    it produces to `adj` as vjp.py's reverse_loop does."""
    rec = rev.ckpt[op]
    _, carries = _state_parts(op)
    inits = op.operands[3:] if op.name == "scf.for" else op.operands
    idx = rev.carried_adjoints(op)
    if not any(op.results[i] in adj for i in idx):
        return
    outer = rev.adjoint_targets(op)
    bars0 = [adj[op.results[i]] if op.results[i] in adj else b.const(0.0, carries[i].type)
             for i in idx]
    accs0 = [adj[v] if v in adj else b.const(0.0, v.type) for v in outer]
    types = [a.type for a in carries]
    ns, nb = len(types), len(bars0)
    c, tape = rev.checkpoints, rec.tape
    split = split_func(rev.module)

    def unpack(args):
        fine, capo, depth, top = args[:4]
        state = args[4:4 + ns]
        return fine, capo, depth, top, state, args[4 + ns:4 + ns + nb], args[4 + ns + nb:]

    def cond(bb, args):
        return _i(bb, "arith.cmpi", args[0], bb.const(0, I64), pred="sgt")

    def act(bb, args):
        fine, capo, depth, top, state, bars, accs = unpack(args)
        one = bb.const(1, I64)
        all_types = [I64] * 4 + types + [v.type for v in bars] + [v.type for v in accs]

        def restore(rb):  # fine == capo: continue from the newest snapshot (popped; the
            # next action stores it again unless its iteration is the one to turn)
            k, st, prev = _pop_snapshot(rb, tape, types)
            return [fine, k, _i(rb, "arith.subi", depth, one), prev] + st + bars + accs

        def turn(tb):  # fine == capo + 1: record iteration capo and reverse it
            saved = dict(rev.vmap)
            rev.forward_window(op, tb, capo, state)
            nbars, naccs = rev.reverse_window(op, tb, capo, bars, accs)
            rev.vmap = saved

            def drop(db):  # the snapshot of this iteration is no longer needed
                _, _, prev = _pop_snapshot(db, tape, types)
                return [_i(db, "arith.subi", depth, db.const(1, I64)), prev]
            depth2, top2 = if_op(tb, _i(tb, "arith.cmpi", top, capo, pred="eq"), [I64, I64],
                               drop, lambda eb: [depth, top])
            return [_i(tb, "arith.subi", fine, one), capo, depth2, top2] + state + nbars + naccs

        def onward(ob):
            def takeshot(sb):
                _push_snapshot(sb, tape, top, state, capo)
                return [fine, capo, _i(sb, "arith.addi", depth, sb.const(1, I64)), capo] + \
                    state + bars + accs

            def go(gb):
                ds = _i(gb, "arith.subi", gb.const(c + 1, I64), depth)
                m = gb.create("func.call", [capo, fine, ds], {"callee": split},
                              result_types=[I64]).result
                gb.create("ad.count", [_i(gb, "arith.subi", m, capo)],
                          {"counter": "recomputed_steps"}, result_types=[])
                st = advance(rev, gb, op, capo, m, state)
                return [fine, m, depth, top] + st + bars + accs
            return if_op(ob, _i(ob, "arith.cmpi", top, capo, pred="ne"), all_types, takeshot, go)

        def not_restore(xb):
            last = _i(xb, "arith.cmpi", _i(xb, "arith.subi", fine, capo), xb.const(1, I64),
                      pred="eq")
            return if_op(xb, last, all_types, turn, onward)
        return if_op(bb, _i(bb, "arith.cmpi", fine, capo, pred="eq"), all_types, restore,
                   not_restore)

    hints = ["fine", "capo", "depth", "top"] + [a.hint for a in carries] + \
        [v.hint for v in bars0] + [v.hint for v in accs0]
    out = _while(b, [rec.n, rec.capo, rec.depth, rec.top] + list(rec.state) + bars0 + accs0,
                 cond, act, hints)
    bars, accs = out[4 + ns:4 + ns + nb], out[4 + ns + nb:]
    for v, r in zip(outer, accs):
        r.hint = v.hint
        adj[v] = r  # the accumulator started from adj[v]
    for k, i in enumerate(idx):
        if rev.act.active(inits[i]):
            rev.add(adj, inits[i], bars[k], b)
