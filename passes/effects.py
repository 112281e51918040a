"""Memory effects: which array arguments a function may write (directly or through calls).

The entry point checks those arguments are writeable numpy arrays; the dispatcher raises a
ValueError naming the parameter otherwise. IR analysis only.
"""

__all__ = ["written_arguments"]


def written_arguments(module, func, _memo=None):
    """Indices of `func`'s memref arguments that it may write."""
    memo = {} if _memo is None else _memo
    if func.name in memo:
        return memo[func.name]
    memo[func.name] = frozenset()  # recursion guard (the frontend rejects recursion)
    args = {a: i for i, a in enumerate(func.args) if a.type.is_memref}
    out = set()
    unknown = False  # a write through a memref that is not an argument (joined by if/loop)
    for op in func.walk():
        targets = []
        if op.name == "lldiff.store":
            targets = [op.operands[1]]
        elif op.name == "func.call":
            callee = module[op.attrs["callee"]]
            inner = written_arguments(module, callee, memo)
            targets = [op.operands[i] for i in inner]
        for m in targets:
            if m in args:
                out.add(args[m])
            else:
                unknown = True
    if unknown:
        out |= set(args.values())
    memo[func.name] = frozenset(out)
    return memo[func.name]
