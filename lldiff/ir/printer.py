"""Prints IR as MLIR text that `mlir-opt` parses (func/arith/math/scf; our own ops generic).

Owns naming of SSA values for display and the textual syntax of every op. Must stay in sync
with what `mlir-opt-22 --allow-unregistered-dialect` accepts (tests/test_mlir.py checks).
"""

import math
import re
import struct

from .types import I1

__all__ = ["print_module", "print_func", "format_float", "Namer"]


def format_float(v):
    """MLIR float literal: always with a dot; inf and nan as hex bit patterns."""
    if math.isfinite(v):
        return "%.17e" % v
    bits = struct.unpack("<Q", struct.pack("<d", v))[0]
    if math.isnan(v):
        bits = 0x7FF8000000000000
    return "0x%016X" % bits


_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_$.]*$")


class Namer:
    """Display names of values: hints where they are identifiers, else numbers."""

    def __init__(self):
        self.names = {}
        self.used = set()
        self.counter = 0

    def __call__(self, v):
        name = self.names.get(v)
        if name is None:
            hint = v.hint.lstrip(".") if v.hint else None
            if hint and _IDENT.match(hint):
                name, k = hint, 0
                while name in self.used:
                    k += 1
                    name = f"{hint}_{k}"
            else:
                while str(self.counter) in self.used:
                    self.counter += 1
                name = str(self.counter)
                self.counter += 1
            self.used.add(name)
            self.names[v] = name
        return "%" + name


def _types(ts):
    return ", ".join(str(t) for t in ts)


def _fn_type(ins, outs):
    res = str(outs[0]) if len(outs) == 1 else f"({_types(outs)})"
    return f"({_types(ins)}) -> {res}"


def _attr(v):
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return f"{v} : i64"
    if isinstance(v, float):
        return f"{format_float(v)} : f64"
    return '"' + str(v) + '"'


class _Printer:
    def __init__(self, namer=None):
        self.lines = []
        self.name = namer or Namer()

    def emit(self, depth, text):
        self.lines.append("  " * depth + text)

    def vals(self, vs):
        return ", ".join(self.name(v) for v in vs)

    def func(self, f):
        args = ", ".join(f"{self.name(a)}: {a.type}" for a in f.args)
        res = ""
        if f.result_types:
            rt = f.result_types
            res = f" -> {rt[0]}" if len(rt) == 1 else f" -> ({_types(rt)})"
        self.emit(0, f"func.func @{f.name}({args}){res} {{")
        self.block_ops(f.body.block, 1)
        self.emit(0, "}")

    def block_ops(self, block, depth):
        for op in block.ops:
            self.op(op, depth)

    def op(self, op, d):
        lhs = f"{self.vals(op.results)} = " if op.results else ""
        n, ops, a = op.name, op.operands, op.attrs
        syntax = _syntax(n)
        if syntax == "const":
            t = a["type"]
            v = a["value"]
            if t is I1:
                text = "true" if v else "false"
            elif t.is_float:
                text = f"{format_float(v)} : {t}"
            else:
                text = f"{v} : {t}"
            self.emit(d, f"{lhs}arith.constant {text}")
        elif syntax in ("binary", "unary", "unary_pred", "ternary"):
            self.emit(d, f"{lhs}{n} {self.vals(ops)} : {ops[0].type}")
        elif syntax == "cmp":
            self.emit(d, f"{lhs}{n} {a['pred']}, {self.vals(ops)} : {ops[0].type}")
        elif syntax == "cast":
            self.emit(d, f"{lhs}{n} {self.vals(ops)} : {ops[0].type} to {op.results[0].type}")
        elif syntax == "select":
            self.emit(d, f"{lhs}{n} {self.vals(ops)} : {ops[1].type}")
        elif syntax == "fpowi":
            self.emit(d, f"{lhs}{n} {self.vals(ops)} : {ops[0].type}, {ops[1].type}")
        elif n == "scf.if":
            self.scf_if(op, lhs, d)
        elif n == "scf.for":
            self.scf_for(op, lhs, d)
        elif n == "scf.while":
            self.scf_while(op, lhs, d)
        elif n in ("scf.yield", "func.return"):
            kw = "scf.yield" if n == "scf.yield" else "return"
            self.emit(d, f"{kw} {self.vals(ops)} : {_types(v.type for v in ops)}" if ops else kw)
        elif n == "scf.condition":
            rest = ops[1:]
            tail = f" {self.vals(rest)} : {_types(v.type for v in rest)}" if rest else ""
            self.emit(d, f"scf.condition({self.name(ops[0])}){tail}")
        elif n == "func.call":
            ft = _fn_type([v.type for v in ops], [r.type for r in op.results])
            if not op.results:
                ft = f"({_types(v.type for v in ops)}) -> ()"
            self.emit(d, f"{lhs}func.call @{a['callee']}({self.vals(ops)}) : {ft}")
        else:
            attrs = ""
            if a:
                attrs = " {" + ", ".join(f"{k} = {_attr(v)}" for k, v in sorted(a.items())) + "}"
            outs = [r.type for r in op.results]
            rt = f"({_types(outs)})" if len(outs) != 1 else str(outs[0])
            self.emit(d, f'{lhs}"{n}"({self.vals(ops)}){attrs} : ({_types(v.type for v in ops)}) -> {rt}')

    def scf_if(self, op, lhs, d):
        rt = f" -> ({_types(r.type for r in op.results)})" if op.results else ""
        self.emit(d, f"{lhs}scf.if {self.name(op.operands[0])}{rt} {{")
        then, other = op.regions
        self.block_ops(then.block, d + 1)
        if other.blocks and (other.block.ops or op.results):
            self.emit(d, "} else {")
            self.block_ops(other.block, d + 1)
        self.emit(d, "}")

    def scf_for(self, op, lhs, d):
        lb, ub, step, *inits = op.operands
        body = op.regions[0].block
        iv, *iters = body.args
        head = f"{lhs}scf.for {self.name(iv)} = {self.name(lb)} to {self.name(ub)} step {self.name(step)}"
        if iters:
            pairs = ", ".join(f"{self.name(a)} = {self.name(v)}" for a, v in zip(iters, inits))
            head += f" iter_args({pairs}) -> ({_types(v.type for v in inits)})"
        self.emit(d, head + f" : {lb.type} {{")
        self.block_ops(body, d + 1)
        self.emit(d, "}")

    def scf_while(self, op, lhs, d):
        before, after = op.regions[0].block, op.regions[1].block
        pairs = ", ".join(f"{self.name(a)} = {self.name(v)}" for a, v in zip(before.args, op.operands))
        ins = _types(v.type for v in op.operands)
        outs = _types(r.type for r in op.results)
        self.emit(d, f"{lhs}scf.while ({pairs}) : ({ins}) -> ({outs}) {{")
        self.block_ops(before, d + 1)
        self.emit(d, "} do {")
        args = ", ".join(f"{self.name(a)}: {a.type}" for a in after.args)
        self.emit(d, f"^bb0({args}):")
        self.block_ops(after, d + 1)
        self.emit(d, "}")


def _syntax(name):
    from .ops import OPS
    od = OPS.get(name)
    return od.syntax if od is not None else "generic"


def print_func(f, namer=None):
    """MLIR text of `f`; pass a `Namer` to name values the same way in other output."""
    p = _Printer(namer)
    p.func(f)
    return "\n".join(p.lines) + "\n"


def print_module(m):
    return "\n".join(print_func(f) for f in m)
