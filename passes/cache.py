"""Cached-value analysis: what the reverse sweep of a loop body takes from the tape.

The reverse sweep of one loop iteration reads primal values of that iteration (the `reads` of
the rule table, branch conditions, bounds of inner loops). Each is

* available: defined outside the loop, so the reverse sweep sees the forward value;
* free: an induction variable or an affine integer counter (`k += c`), rebuilt from the
  reverse iteration number -- integer counters are never cached;
* recomputed: the result of a pure scalar op of the body whose operands are themselves
  available, free, recomputed or cached, cloned into the reverse body -- an array load too,
  when the function never writes that array (memory never written is re-read, not cached);
* cached: pushed on the loop's tape at the end of each forward iteration and popped at the
  start of the matching reverse iteration.

Values that cannot be recomputed -- carried values (block arguments), results of `scf.if`,
inner loops and calls, values defined inside branches -- are the sources. Which values to cache
is a minimum vertex cut between those sources and the values the reverse sweep reads, each
vertex weighing the bytes it would take on the tape: the smallest tape from which everything
the reverse sweep reads can be rebuilt. For the Bessel series `s *= -1/k/(k+v) * (z/2)**2`
the cut is `s` alone (8 bytes an iteration): `k` is free, the factor is recomputed.

The cost model is bounded: a value is recomputed only if rebuilding it takes at most
`MAX_RECOMPUTE` ops of the body (else it is a source: cached rather than recomputed at any
cost), and an op with regions, effects or a call is never recomputed.

IR analysis only: `plan` reads the IR and returns a `Plan`; passes/vjp.py acts on it.
"""

from collections import deque

from lldiff.ir import OPS

__all__ = ["Plan", "plan", "MAX_RECOMPUTE", "type_bytes"]

MAX_RECOMPUTE = 32
_INF = float("inf")


def type_bytes(t):
    """Bytes a value of type `t` takes on a tape (i1 takes one byte; arrays never go on a
    tape: the cut treats them as infinitely expensive)."""
    return max(1, t.width // 8)


class Plan:
    """The decision for one loop body: `cached` (tape order), `recompute` (ops, body order)."""

    def __init__(self, needed, cached, recompute, free, why):
        self.needed = needed
        self.cached = cached
        self.recompute = recompute
        self.free = free
        self.why = why  # value -> "available" | "free" | "recomputed" | "cached"

    @property
    def bytes_per_iteration(self):
        return sum(type_bytes(v.type) for v in self.cached)


def _recomputable(op, reread):
    d = OPS.get(op.name)
    return (d is not None and d.pure and not op.regions and op.name != "func.call"
            and d.type_rule is not None and len(op.results) == 1
            and (op.name != "lldiff.load" or reread(op)))


def plan(block, needed, free, reread=lambda op: True):
    """Decide available / free / recomputed / cached for `needed`, read in the reverse of `block`.

    `needed`: values the reverse of one iteration reads that are defined inside the loop (at
    the top level of `block`, its arguments, or deeper inside branches). `free`: the values
    rebuilt from the iteration number (induction variable, affine counters). `reread(load)`:
    whether an array load may be repeated in the reverse sweep (its array is never written);
    otherwise the loaded value is cached like any other source.
    """
    position = {op: i for i, op in enumerate(block.ops)}
    local = set(block.args)
    for op in block.ops:
        local.update(op.results)

    def inside(v):
        return v in local or v in needed_set

    needed_set = set(needed)
    # The graph: every value reachable backwards from `needed` through recomputable ops.
    kind = {}   # value -> "free" | "op" | "source"
    cone = {}   # value -> set of ops rebuilding it (only for "op")
    order = []
    stack = list(needed)
    seen = set()
    while stack:
        v = stack.pop()
        if v in seen or not inside(v):
            continue
        seen.add(v)
        order.append(v)
        op = getattr(v, "op", None)
        if v in free:
            kind[v] = "free"
        elif op is not None and op in position and _recomputable(op, reread):
            kind[v] = "op"
            stack.extend(op.operands)
        else:
            kind[v] = "source"
    # Bounded cost: values whose rebuild needs too many ops become sources.
    for v in sorted((v for v in order if kind[v] == "op"), key=lambda v: position[v.op]):
        ops = {v.op}
        for u in v.op.operands:
            if kind.get(u) == "op":
                ops |= cone[u]
        cone[v] = ops
        if len(ops) > MAX_RECOMPUTE:
            kind[v] = "source"
            cone[v] = set()
    cached = _min_cut(order, kind, needed)
    cached_set = set(cached)
    # What must be rebuilt, in body order.
    rebuild = set()
    stack = list(needed)
    while stack:
        v = stack.pop()
        if v in cached_set or kind.get(v) != "op" or v.op in rebuild:
            continue
        rebuild.add(v.op)
        stack.extend(v.op.operands)
    recompute = sorted(rebuild, key=position.__getitem__)
    why = {}
    for v in needed:
        why[v] = ("cached" if v in cached_set else "free" if kind.get(v) == "free" else
                  "recomputed" if kind.get(v) == "op" else "available")
    defined = {}
    for i, a in enumerate(block.args):
        defined[a] = (-1, i)
    for op in block.ops:
        for r in op.results:
            defined[r] = (position[op], r.index)
    cached.sort(key=lambda v: defined[v] if v in defined else (len(block.ops), needed.index(v)))
    return Plan(list(needed), cached, recompute, [v for v in order if kind[v] == "free"], why)


def _min_cut(order, kind, needed):
    """Minimum-bytes vertex cut separating the sources from `needed` (Edmonds-Karp)."""
    # Vertex v splits into (v, 0) -> (v, 1) with capacity = its bytes; free vertices never
    # carry flow (nothing reaches them from the source).
    cap = {}
    adj = {}

    def edge(a, b, c):
        cap[(a, b)] = cap.get((a, b), 0) + c
        cap.setdefault((b, a), 0)
        adj.setdefault(a, []).append(b)
        adj.setdefault(b, []).append(a)

    S, T = "S", "T"
    for v in order:
        k = kind[v]
        if k == "free":
            continue
        edge((v, 0), (v, 1), _INF if v.type.is_memref else type_bytes(v.type))
        if k == "source":
            edge(S, (v, 0), _INF)
        else:
            for u in v.op.operands:
                if kind.get(u) in ("op", "source"):
                    edge((u, 1), (v, 0), _INF)
    for v in needed:
        if kind.get(v) in ("op", "source"):
            edge((v, 1), T, _INF)
    if S not in adj or T not in adj:
        return []
    while True:
        parent = {S: None}
        q = deque([S])
        while q and T not in parent:
            a = q.popleft()
            for b in adj[a]:
                if b not in parent and cap[(a, b)] > 0:
                    parent[b] = a
                    q.append(b)
        if T not in parent:
            break
        path, b = [], T
        while parent[b] is not None:
            path.append((parent[b], b))
            b = parent[b]
        f = min(cap[e] for e in path)
        if f == _INF:  # only arrays stand between what cannot be rebuilt and what is read
            raise NotImplementedError("reverse mode would have to record which array a loop "
                                      "iteration used; not supported yet")
        for a, b in path:
            cap[(a, b)] -= f
            cap[(b, a)] += f
    reach = set(parent)
    return [v for v in order if kind[v] != "free" and (v, 0) in reach and (v, 1) not in reach]
