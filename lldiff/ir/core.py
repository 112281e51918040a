"""The IR's data structures: values, ops, blocks, regions, functions and modules.

SSA with structured control flow, shaped like MLIR: every `Value` carries its `type`; an `Op`
has a name, operands, results, attributes and regions; a `Region` holds blocks (the structured
ops here use exactly one block per region). Owns structure only: op semantics live in
`ops.py`, text in `printer.py`, checks in `verifier.py`.
"""

__all__ = ["Value", "OpResult", "BlockArg", "Op", "Block", "Region", "Func", "Module", "Loc"]


class Loc:
    """A source location (1-based line and column) attached to ops for error messages."""

    __slots__ = ("filename", "line", "col")

    def __init__(self, filename, line, col):
        self.filename = filename
        self.line = line
        self.col = col

    def __repr__(self):
        return f"{self.filename}:{self.line}:{self.col}"


class Value:
    __slots__ = ("type", "hint")

    def __init__(self, type, hint=None):
        self.type = type
        self.hint = hint

    def __repr__(self):
        return f"<{type(self).__name__} {self.hint or ''}: {self.type}>"


class OpResult(Value):
    __slots__ = ("op", "index")

    def __init__(self, type, op, index, hint=None):
        super().__init__(type, hint)
        self.op = op
        self.index = index


class BlockArg(Value):
    __slots__ = ("block", "index")

    def __init__(self, type, block, index, hint=None):
        super().__init__(type, hint)
        self.block = block
        self.index = index


class Op:
    __slots__ = ("name", "operands", "results", "attrs", "regions", "parent", "loc")

    def __init__(self, name, operands, result_types, attrs=None, regions=(), loc=None):
        self.name = name
        self.operands = list(operands)
        self.results = [OpResult(t, self, i) for i, t in enumerate(result_types)]
        self.attrs = dict(attrs or {})
        self.regions = list(regions)
        for r in self.regions:
            r.parent = self
        self.parent = None
        self.loc = loc

    @property
    def result(self):
        (r,) = self.results
        return r

    def walk(self):
        """This op and every op nested in its regions, outer before inner."""
        yield self
        for region in self.regions:
            for block in region.blocks:
                for op in block.ops:
                    yield from op.walk()

    def __repr__(self):
        return f"<Op {self.name}>"


class Block:
    __slots__ = ("args", "ops", "parent")

    def __init__(self, arg_types=(), hints=None):
        hints = hints or [None] * len(arg_types)
        self.args = [BlockArg(t, self, i, h) for i, (t, h) in enumerate(zip(arg_types, hints))]
        self.ops = []
        self.parent = None

    def add_arg(self, type, hint=None):
        a = BlockArg(type, self, len(self.args), hint)
        self.args.append(a)
        return a

    def append(self, op):
        op.parent = self
        self.ops.append(op)
        return op

    @property
    def terminator(self):
        return self.ops[-1] if self.ops else None


class Region:
    __slots__ = ("blocks", "parent")

    def __init__(self, blocks=None):
        self.blocks = list(blocks or [])
        for b in self.blocks:
            b.parent = self
        self.parent = None

    @property
    def block(self):
        return self.blocks[0]


class Func:
    """`func.func`: a name, typed arguments (the entry block's args) and result types."""

    __slots__ = ("name", "body", "result_types", "arg_names", "loc", "attrs")

    def __init__(self, name, arg_types, result_types, arg_names=None, loc=None):
        self.name = name
        self.arg_names = list(arg_names or [f"arg{i}" for i in range(len(arg_types))])
        block = Block(arg_types, self.arg_names)
        self.body = Region([block])
        self.result_types = list(result_types)
        self.loc = loc
        self.attrs = {}

    @property
    def args(self):
        return self.body.block.args

    @property
    def arg_types(self):
        return [a.type for a in self.args]

    def walk(self):
        for op in self.body.block.ops:
            yield from op.walk()


class Module:
    """An ordered set of functions; the first added is the entry point unless named."""

    __slots__ = ("funcs",)

    def __init__(self, funcs=()):
        self.funcs = {}
        for f in funcs:
            self.add(f)

    def add(self, func):
        if func.name in self.funcs:
            raise ValueError(f"duplicate function @{func.name}")
        self.funcs[func.name] = func
        return func

    def __getitem__(self, name):
        return self.funcs[name]

    def __iter__(self):
        return iter(self.funcs.values())
