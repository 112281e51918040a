"""Lowers a Python function's AST to typed IR with structured control flow.

Types are inferred while lowering, from the argument types of the call: each Python variable
maps to the SSA value it holds at that point (`env`). Joins (`scf.if` results, loop-carried
values) unify int and float to float. Loops are lowered speculatively: when a carried variable
widens (int -> float) or a variable first bound in the loop must be carried, the loop is
lowered again with the wider types.

`break`, `continue` and `return` inside loops become structured control flow with flag
variables (`.brk`, `.cont`, `.ret`) and the return values `.rv0..`: a statement after one that
may exit is guarded by `scf.if` on the flags; a loop with `break` or `return` becomes an
`scf.while` whose condition tests the flags. When one branch of an `if` always exits, the rest
of the block moves into the other branch instead, so common early returns need no flags.

Owns the language subset: everything else is a `CompileError` at the user's line. Must not
know about LLVM, derivatives or the runtime.
"""

import ast

from ..errors import CompileError
from ..ir import F32, F64, I1, I64, Block, Builder, Func, Loc, Op, OpResult, memref, unify
from . import intrinsics as intr

__all__ = ["lower_function", "type_of_python_value"]

NONE, MAYBE, ALWAYS = 0, 1, 2  # how a statement may leave the enclosing block

I64_MIN_F = -9223372036854775808.0
I64_LIMIT_F = 9223372036854775808.0


def type_of_python_value(v):
    if isinstance(v, bool):
        return I1
    if isinstance(v, int):
        return I64
    if isinstance(v, float):
        return F64
    np = intr._numpy()
    if np is not None and type(v) is np.ndarray:
        elem = ARRAY_DTYPES.get(v.dtype.str.lstrip("<=|"))
        if elem is not None and v.ndim in (1, 2) and v.dtype.isnative:
            return memref(elem, v.ndim, v.flags.c_contiguous)
    return None


# numpy dtype (without byte order) -> element type; float32 is read as f64 (arith.extf) and
# rounded back (arith.truncf) when written, so arithmetic always happens in f64.
ARRAY_DTYPES = {"f8": F64, "f4": F32, "i8": I64}


def lower_function(src, arg_types, symbol, resolve_callee, boundscheck=False):
    """Lower `src` (a `Source`) for `arg_types`; return (Func, callee Funcs).

    `resolve_callee(obj, arg_types)` returns `(Func, [Funcs it needs])` when `obj` is an lldiff
    compiled function (or `(Func, [Funcs], call attrs)`: a user rule), or None. `boundscheck`: array indices out of range raise IndexError
    (otherwise they are undefined behaviour, as in numba).
    """
    low = _Lowerer(src, arg_types, symbol, resolve_callee)
    low.boundscheck = boundscheck
    return low.run()


class _LoopCtx:
    __slots__ = ("brk", "cont", "has_brk", "has_cont", "has_ret")

    def __init__(self, depth, has_brk, has_cont, has_ret):
        self.brk = f".brk{depth}"
        self.cont = f".cont{depth}"
        self.has_brk = has_brk
        self.has_cont = has_cont
        self.has_ret = has_ret


class _Restart(Exception):
    """Raised inside speculative loop lowering when the carried set or a type changed."""


# --- syntactic helpers -------------------------------------------------------------------

def _reads(nodes):
    """Names a list of statements/expressions may read."""
    out = set()
    for node in nodes:
        for n in ast.walk(node):
            if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load):
                out.add(n.id)
            elif isinstance(n, ast.AugAssign) and isinstance(n.target, ast.Name):
                out.add(n.target.id)
    return out


def _assigned(nodes):
    out = []
    for node in nodes:
        for n in ast.walk(node):
            if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store) and n.id not in out:
                out.append(n.id)
    return out


def _loop_level(stmts, kinds):
    """Does a statement of `kinds` occur in `stmts` outside nested loops?"""
    for s in stmts:
        for n in _walk_no_loops(s):
            if isinstance(n, kinds):
                return True
    return False


def _walk_no_loops(node):
    yield node
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.For, ast.While)):
            continue
        yield from _walk_no_loops(child)


def _has_return(stmts):
    return any(isinstance(n, ast.Return) for s in stmts for n in ast.walk(s))


def _always_leaves(stmts, kinds):
    """True when control never falls off the end of `stmts` (syntactically): a statement of
    `kinds` ends it, both branches of an if do, or a `while True` has no break."""
    for s in stmts:
        if isinstance(s, kinds):
            return True
        if isinstance(s, ast.If) and _always_leaves(s.body, kinds) and \
                _always_leaves(s.orelse, kinds):
            return True
        if (isinstance(s, ast.While) and isinstance(s.test, ast.Constant) and s.test.value is True
                and not _loop_level(s.body, ast.Break)):
            return True
    return False


def _always_exits(stmts):
    return _always_leaves(stmts, (ast.Return, ast.Break, ast.Continue))


def _always_returns(stmts):
    return _always_leaves(stmts, ast.Return)


_UNSUPPORTED_STMTS = {
    ast.Try: ("try/except", "lldiff functions cannot catch exceptions; check values with if"),
    ast.With: ("with", "remove the with block"),
    ast.Global: ("global", "module-level values may be read (they are frozen at compile time) "
                           "but not assigned"),
    ast.Nonlocal: ("nonlocal", "closures over mutable state are not supported; pass values as "
                               "arguments and return results"),
    ast.ClassDef: ("class definition", "define classes outside lldiff functions"),
    ast.FunctionDef: ("nested function", "define it at module level and decorate it with "
                                         "@lldiff.jit"),
    ast.AsyncFunctionDef: ("async function", "use plain def"),
    ast.Import: ("import", "import modules at module level; math and numpy are supported"),
    ast.ImportFrom: ("import", "import modules at module level; math and numpy are supported"),
    ast.Assert: ("assert", "check conditions with if"),
    ast.Delete: ("del", "rebind the variable instead"),
    ast.Raise: ("raise", "return a sentinel value such as nan instead"),
    ast.AsyncFor: ("async for", "use for ... in range(...)"),
    ast.AsyncWith: ("async with", "remove the with block"),
}
if hasattr(ast, "TryStar"):
    _UNSUPPORTED_STMTS[ast.TryStar] = _UNSUPPORTED_STMTS[ast.Try]
if hasattr(ast, "Match"):
    _UNSUPPORTED_STMTS[ast.Match] = ("the match statement", "use if/elif/else")

_UNSUPPORTED_EXPRS = {
    ast.Lambda: ("lambda", "define a module-level function with @lldiff.jit"),
    ast.List: ("list literal", "scalars only: use separate variables"),
    ast.Dict: ("dict literal", "scalars only: use separate variables"),
    ast.Set: ("set literal", "scalars only: use separate variables"),
    ast.ListComp: ("list comprehension", "use a for loop over range(...)"),
    ast.SetComp: ("set comprehension", "use a for loop over range(...)"),
    ast.DictComp: ("dict comprehension", "use a for loop over range(...)"),
    ast.GeneratorExp: ("generator expression", "use a for loop over range(...)"),
    ast.Yield: ("yield", "return a value instead; generators cannot be compiled"),
    ast.YieldFrom: ("yield from", "return a value instead; generators cannot be compiled"),
    ast.Await: ("await", "use plain functions"),
    ast.JoinedStr: ("string (f-string)", "lldiff functions compute with float, int and bool"),
    ast.NamedExpr: ("assignment expression ':='", "assign in a separate statement"),
    ast.Starred: ("starred expression", "pass arguments one by one"),
    ast.Slice: ("slicing", "scalars only"),
}

_BINOPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//",
           ast.Mod: "%", ast.Pow: "**", ast.MatMult: "@", ast.BitAnd: "&", ast.BitOr: "|",
           ast.BitXor: "^", ast.LShift: "<<", ast.RShift: ">>"}
_CMP = {ast.Lt: ("olt", "slt"), ast.LtE: ("ole", "sle"), ast.Gt: ("ogt", "sgt"),
        ast.GtE: ("oge", "sge"), ast.Eq: ("oeq", "eq"), ast.NotEq: ("une", "ne")}
_CMP_NAMES = {ast.Is: "is", ast.IsNot: "is not", ast.In: "in", ast.NotIn: "not in"}

_SUBSET_HINT = ("lldiff compiles float/int/bool code: arithmetic, math and numpy scalar "
                "functions, if/while/for-range, and calls to other @lldiff.jit functions")


class _Lowerer:
    def __init__(self, src, arg_types, symbol, resolve_callee):
        self.src = src
        self.tree = src.tree
        self.arg_types = list(arg_types)
        self.symbol = symbol
        self.resolve_callee = resolve_callee
        self.b = Builder()
        self.env = {}
        self.nonneg = set()  # int values known to be >= 0 (see known_nonneg)
        self.loops = []
        self.n_results = None
        self.callees = {}
        self.globals = dict(getattr(src.fn, "__globals__", {}))
        closure = getattr(src.fn, "__closure__", None) or ()
        for name, cell in zip(src.fn.__code__.co_freevars, closure):
            try:
                self.globals[name] = cell.cell_contents
            except ValueError:
                pass

    # --- errors and locations ---------------------------------------------------------

    def error(self, node, message, hint=None):
        return self.src.error(node, message, hint)

    def unsupported(self, node, what, hint=_SUBSET_HINT):
        return self.error(node, f"{what} is not supported in lldiff functions", hint)

    def loc(self, node):
        line, col = self.src.position(node)
        return Loc(self.src.filename, line, col)

    # --- driver -----------------------------------------------------------------------

    def run(self):
        fn = self.tree
        a = fn.args
        params = a.posonlyargs + a.args
        if a.vararg or a.kwarg or a.kwonlyargs:
            node = a.vararg or a.kwarg or a.kwonlyargs[0]
            raise self.unsupported(node, "*args, **kwargs and keyword-only parameters",
                                   "use plain positional parameters")
        if len(params) != len(self.arg_types):
            raise CompileError(f"{fn.name}() takes {len(params)} arguments, "
                               f"got {len(self.arg_types)}")
        names = [p.arg for p in params]
        self.locals = set(names) | set(_assigned(fn.body))
        func = Func(self.symbol, self.arg_types, [], names, self.loc(fn))
        self.b.block = func.body.block
        self.b.loc = func.loc
        for name, arg in zip(names, func.args):
            self.env[name] = arg
        self.env[".ret"] = self.b.const(False, I1)
        body = fn.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                and isinstance(body[0].value.value, str):
            body = body[1:]  # docstring
        fenced = [n for s in body for n in ast.walk(s) if type(n) in _UNSUPPORTED_STMTS]
        if fenced:
            first = min(fenced, key=lambda n: (n.lineno, n.col_offset))
            raise self.unsupported(first, *_UNSUPPORTED_STMTS[type(first)])
        self.returns_value = any(isinstance(n, ast.Return) and n.value is not None
                                 for s in body for n in ast.walk(s))
        if self.returns_value and not _always_returns(body):
            last = body[-1] if body else fn
            raise self.error(last, "this function may reach its end without returning a value "
                                   "(returning None is not supported)",
                             "add a return statement at the end of the function")
        self.stmts(body, set())
        if self.returns_value:
            results = [self.env[f".rv{i}"] for i in range(self.n_results)]
        else:
            results = []
        func.result_types = [v.type for v in results]
        self.b.create("func.return", results, result_types=[])
        return func, list(self.callees.values())

    # --- statements -------------------------------------------------------------------

    def exit_flags(self):
        """Names of the flags that say control left the current block."""
        flags = [".ret"]
        if self.loops:
            ctx = self.loops[-1]
            if ctx.has_brk:
                flags.append(ctx.brk)
            if ctx.has_cont:
                flags.append(ctx.cont)
        return [f for f in flags if f in self.env]

    def stmts(self, stmts, live_after):
        """Lower a statement list into the current block; return NONE, MAYBE or ALWAYS."""
        i = 0
        while i < len(stmts):
            s = stmts[i]
            rest = stmts[i + 1:]
            if isinstance(s, ast.If) and rest:
                t, e = _always_exits(s.body), _always_exits(s.orelse)
                if t and e:
                    return self.stmt(s, live_after)
                if t or e:
                    # The rest of the block runs only on the branch that falls through.
                    body, orelse = (s.body, s.orelse + rest) if t else (s.body + rest, s.orelse)
                    moved = ast.If(test=s.test, body=body, orelse=orelse)
                    ast.copy_location(moved, s)
                    return self.stmt(moved, live_after)
            live = _reads(rest) | live_after
            ex = self.stmt(s, live)
            if ex == ALWAYS:
                return ALWAYS
            if ex == MAYBE:
                if rest:
                    self.guarded(rest, live_after)
                return MAYBE
            i += 1
        return NONE

    def guarded(self, stmts, live_after):
        """Lower `stmts` under `if not (exit flags)`."""
        flags = self.exit_flags()
        cond = None
        for f in flags:
            v = self.env[f]
            cond = v if cond is None else self.b.value("arith.ori", cond, v)
        go = self.b.value("arith.xori", cond, self.b.const(True, I1))
        self.if_op(go, lambda: self.stmts(stmts, live_after), lambda: NONE, live_after)

    def stmt(self, s, live_after):
        self.b.loc = self.loc(s)
        kind = type(s)
        if kind in _UNSUPPORTED_STMTS:
            what, hint = _UNSUPPORTED_STMTS[kind]
            raise self.unsupported(s, what, hint)
        if kind is ast.Assign:
            value = self.expr_multi(s.value, allow_array=True)
            for target in s.targets:
                self.assign(target, value, s.value)
            return NONE
        if kind is ast.AnnAssign:
            if s.value is None:
                return NONE
            self.assign(s.target, self.expr_multi(s.value), s.value)
            return NONE
        if kind is ast.AugAssign:
            if isinstance(s.target, ast.Subscript):
                a, idx = self.array_access(s.target)
                cur = self.b.value("lldiff.load", a, *idx)
                if cur.type is F32:
                    cur = self.b.value("arith.extf", cur, to=F64)
                new = self.binop(s.op, cur, self.expr(s.value), s)
                self.store_at(a, idx, new, s)
                return NONE
            if not isinstance(s.target, ast.Name):
                raise self.unsupported(s.target, "assignment to this target",
                                       "assign to plain variable names")
            cur = self.read(s.target.id, s.target)
            self.env[s.target.id] = self.binop(s.op, cur, self.expr(s.value), s)
            return NONE
        if kind is ast.Expr:
            v = s.value
            if isinstance(v, ast.Constant) and isinstance(v.value, str):
                return NONE  # a string statement is a comment
            if isinstance(v, (ast.Yield, ast.YieldFrom, ast.Await)):
                raise self.unsupported(v, *_UNSUPPORTED_EXPRS[type(v)])
            self.expr_multi(v, allow_void=True)
            return NONE
        if kind is ast.Pass:
            return NONE
        if kind is ast.If:
            return self.if_stmt(s, live_after)
        if kind is ast.While:
            return self.while_stmt(s, live_after)
        if kind is ast.For:
            return self.for_stmt(s, live_after)
        if kind is ast.Break:
            if not self.loops:
                raise self.error(s, "'break' outside a loop")
            self.env[self.loops[-1].brk] = self.b.const(True, I1)
            return ALWAYS
        if kind is ast.Continue:
            if not self.loops:
                raise self.error(s, "'continue' outside a loop")
            self.env[self.loops[-1].cont] = self.b.const(True, I1)
            return ALWAYS
        if kind is ast.Return:
            return self.return_stmt(s)
        raise self.unsupported(s, f"the statement {kind.__name__}")

    def return_stmt(self, s):
        if s.value is None:
            if self.returns_value:
                raise self.error(s, "return without a value in a function that returns values")
            vals = []
        else:
            vals = self.expr_multi(s.value, allow_array=True)
            vals = list(vals) if isinstance(vals, tuple) else [vals]
            for v in vals:
                made = getattr(v, "op", None)
                if v.type.is_memref and (made is None or made.name not in ("lldiff.alloc",
                                                                           "func.call")):
                    raise self.unsupported(s.value, "returning an array the function did not "
                                                    "make (an argument, or one chosen by a "
                                                    "branch or loop)",
                                           "return a new array: out = np.zeros(...), fill it, "
                                           "return out")
        if self.n_results is None:
            self.n_results = len(vals)
        elif self.n_results != len(vals):
            raise self.error(s, f"this return gives {len(vals)} values, an earlier one gave "
                                f"{self.n_results}; inconsistent return arity is not supported",
                             "return the same number of values on every path")
        for i, v in enumerate(vals):
            self.env[f".rv{i}"] = v
        self.env[".ret"] = self.b.const(True, I1)
        return ALWAYS

    def assign(self, target, value, value_node):
        if isinstance(target, ast.Name):
            if isinstance(value, tuple):
                raise self.unsupported(value_node, "a tuple as a value",
                                       "unpack it: a, b = ... (tuples exist only as "
                                       "function results)")
            self.env[target.id] = value
            return
        if isinstance(target, (ast.Tuple, ast.List)):
            if not isinstance(value, tuple):
                raise self.error(value_node, "cannot unpack a scalar")
            if len(target.elts) != len(value):
                raise self.error(target, f"cannot unpack {len(value)} values into "
                                         f"{len(target.elts)} names")
            for t, v in zip(target.elts, value):
                self.assign(t, v, value_node)
            return
        if isinstance(target, ast.Subscript):
            if isinstance(value, tuple):
                raise self.unsupported(value_node, "a tuple as a value")
            self.subscript_store(target, value, value_node)
            return
        if isinstance(target, ast.Starred):
            raise self.unsupported(target, "starred assignment")
        raise self.unsupported(target, f"assignment to {type(target).__name__.lower()}",
                               "assign to plain variable names")

    # --- if -----------------------------------------------------------------------------

    def if_stmt(self, s, live_after):
        cond = self.truth(self.expr(s.test), s.test)
        return self.if_op(cond, lambda: self.stmts(s.body, live_after),
                          lambda: self.stmts(s.orelse, live_after), live_after)

    def if_op(self, cond, then_fn, else_fn, live_after):
        """Emit scf.if; each branch fn lowers into the current block; merge live variables."""
        outer_env, outer_block = self.env, self.b.block
        op = Op("scf.if", [cond], [], regions=[])
        envs, exits, blocks = [], [], []
        for fn in (then_fn, else_fn):
            region, block = self.b.block_region()
            op.regions.append(region)
            region.parent = op
            self.env = dict(outer_env)
            self.b.block = block
            exits.append(fn())
            envs.append(self.env)
            blocks.append(block)
        self.env, self.b.block = outer_env, outer_block
        names = []
        for n in list(envs[0]) + [k for k in envs[1] if k not in envs[0]]:
            if n not in live_after and not n.startswith("."):
                continue
            a, b = envs[0].get(n), envs[1].get(n)
            if a is b:
                if a is not None:
                    outer_env[n] = a
                continue
            names.append(n)
        types = []
        for n in names:
            ts = [e[n].type for e in envs if n in e]
            t = ts[0] if len(ts) == 1 else self.join(n, *ts)
            types.append(t)
        for env, block in zip(envs, blocks):
            bb = self.b.at(block)
            vals = [bb.cast(env[n], t) if n in env else bb.const(0, t) for n, t in zip(names, types)]
            bb.create("scf.yield", vals, result_types=[])
        op.results = [OpResult(t, op, i, n) for i, (n, t) in enumerate(zip(names, types))]
        self.b.insert(op)
        for n in list(outer_env):
            if n not in live_after and not n.startswith(".") and (
                    envs[0].get(n) is not outer_env[n] or envs[1].get(n) is not outer_env[n]):
                del outer_env[n]  # rebound in a branch and dead: forget the stale value
        for n, r in zip(names, op.results):
            outer_env[n] = r
        if exits[0] == exits[1] == ALWAYS:
            return ALWAYS
        if exits[0] == exits[1] == NONE:
            return NONE
        return MAYBE

    # --- loops ----------------------------------------------------------------------------

    def while_stmt(self, s, live_after):
        if s.orelse:
            raise self.unsupported(s, "while/else", "use a flag variable after the loop")
        return self.loop(s, s.body, live_after, test=s.test)

    def for_stmt(self, s, live_after):
        if s.orelse:
            raise self.unsupported(s, "for/else", "use a flag variable after the loop")
        it = s.iter
        if not (isinstance(it, ast.Call) and isinstance(it.func, ast.Name)
                and self.lookup_global(it.func.id) == ("builtin", "range")
                and it.func.id not in self.env):
            raise self.unsupported(it, "iteration over anything but range(...)",
                                   "use for i in range(start, stop, step)")
        if it.keywords:
            raise self.unsupported(it.keywords[0], "keyword arguments to range")
        if not 1 <= len(it.args) <= 3:
            raise self.error(it, f"range() takes 1 to 3 arguments, got {len(it.args)}; "
                                 "other forms are not supported")
        if not isinstance(s.target, ast.Name):
            raise self.unsupported(s.target, "a loop target other than a plain name")
        args = []
        for a in it.args:
            v = self.expr(a)
            if v.type is I1:
                v = self.b.cast(v, I64)
            if v.type is not I64:
                raise self.error(a, f"range() arguments must be int, got {v.type}; "
                                    "floats are not supported in range",
                                 "convert with int(...)")
            args.append(v)
        if len(args) == 1:
            start, stop, step = self.b.const(0, I64), args[0], self.b.const(1, I64)
        elif len(args) == 2:
            start, stop, step = args[0], args[1], self.b.const(1, I64)
        else:
            start, stop, step = args
        step_c = _const_value(step)
        if step_c == 0:
            raise self.error(it.args[2], "range() arg 3 must not be zero")
        direct = step_c is not None and step_c > 0
        if direct:
            lb, ub, st = start, stop, step
        else:
            if step_c is None:
                self.raise_if(self.b.value("arith.cmpi", step, self.b.const(0, I64), pred="eq"),
                              "ValueError", "range() arg 3 must not be zero")
            lb, ub, st = self.b.const(0, I64), self.trip_count(start, stop, step), \
                self.b.const(1, I64)
        rng = (lb, ub, st, None if direct else (start, step))
        return self.loop(s, s.body, live_after, rng=rng, target=s.target.id)

    def trip_count(self, start, stop, step):
        """len(range(start, stop, step)) for a nonzero step of unknown sign."""
        b = self.b
        zero, one = b.const(0, I64), b.const(1, I64)
        pos = b.value("arith.cmpi", step, zero, pred="sgt")
        # step > 0: (stop - start + step - 1) // step ; step < 0: (start - stop - step - 1) // -step
        diff = b.value("arith.select", pos, b.value("arith.subi", stop, start),
                       b.value("arith.subi", start, stop))
        mag = b.value("arith.select", pos, step, b.value("arith.subi", zero, step))
        num = b.value("arith.subi", b.value("arith.addi", diff, mag), one)
        n = b.value("arith.floordivsi", num, mag)
        neg = b.value("arith.cmpi", n, zero, pred="slt")
        return b.value("arith.select", neg, zero, n, hint="n")

    def loop(self, s, body, live_after, test=None, rng=None, target=None):
        depth = len(self.loops)
        has_brk = _loop_level(body, ast.Break)
        has_cont = _loop_level(body, ast.Continue)
        has_ret = _has_return(body)
        ctx = _LoopCtx(depth, has_brk, has_cont, has_ret)
        use_while = test is not None or has_brk or has_ret
        if has_brk:
            self.env[ctx.brk] = self.b.const(False, I1)
        counter = f".it{depth}"
        head_live = _reads(body + ([test] if test is not None else [])) | live_after
        candidates = [n for n in _assigned(body) if n in head_live or n in live_after]
        if target is not None and target in live_after and target not in candidates:
            candidates.append(target)
        flags = []
        if has_brk:
            flags.append(ctx.brk)
        if has_ret:
            flags.append(".ret")
            flags += [f".rv{i}" for i in range(self.n_results or 0)]
        # Speculative lowering: carried names and their types grow until stable.
        carried = {}
        for n in flags + candidates:
            if n in self.env:
                carried[n] = self.env[n].type
        if rng is not None and use_while:
            carried[counter] = I64
        for _attempt in range(64):
            try:
                op, exit_kind = self.build_loop(s, ctx, test, rng, target, body, carried,
                                                head_live, live_after, use_while, counter,
                                                candidates, flags)
                break
            except _Restart:
                continue
        else:
            raise self.error(s, "internal error: loop types did not converge")
        # Initial values, converted to the carried types.
        inits = []
        for n, t in carried.items():
            if n == counter:
                inits.append(rng[0])
            elif n in self.env:
                inits.append(self.b.cast(self.env[n], t))
            else:
                inits.append(self.b.const(0, t))
        if op.name == "scf.for":
            op.operands = list(op.operands[:3]) + inits
        else:
            op.operands = inits
        self.b.insert(op)
        for n in _assigned(body):
            self.env.pop(n, None)
        if target is not None:
            self.env.pop(target, None)
        for n, r in zip(carried, op.results):
            if n != counter:
                self.env[n] = r
        self.env.pop(ctx.brk, None)
        return MAYBE if has_ret else NONE

    def build_loop(self, s, ctx, test, rng, target, body, carried, head_live, live_after,
                   use_while, counter, candidates, flags):
        names = list(carried)
        types = [carried[n] for n in names]
        outer_env, outer_block = self.env, self.b.block
        try:
            if use_while:
                op = Op("scf.while", [], types, regions=[])
                before_region, before = self.b.block_region(types, names)
                after_region, after = self.b.block_region(types, names)
                op.regions = [before_region, after_region]
                for r in op.regions:
                    r.parent = op
                # before: the loop condition
                self.env = dict(outer_env)
                self.env.update(zip(names, before.args))
                self.b.block = before
                cond = self.loop_condition(ctx, test, rng, counter, s)
                self.b.create("scf.condition", [cond] + list(before.args), result_types=[])
                # after: the body
                self.env = dict(outer_env)
                self.env.update(zip(names, after.args))
                self.b.block = after
                if rng is not None:
                    self.bind_target(target, self.env[counter], rng)
                body_block = after
            else:
                lb, ub, st, norm = rng
                op = Op("scf.for", [lb, ub, st], types, regions=[])
                region, body_block = self.b.block_region([I64] + types, ["i"] + names)
                op.regions = [region]
                region.parent = op
                self.env = dict(outer_env)
                self.env.update(zip(names, body_block.args[1:]))
                self.b.block = body_block
                self.bind_target(target, body_block.args[0], rng)
            self.loops.append(ctx)
            if ctx.has_cont:
                self.env[ctx.cont] = self.b.const(False, I1)
            exit_kind = self.stmts(body, head_live)
            self.loops.pop()
            # Check the carried set and types; restart when they grew.
            grew = False
            if ctx.has_ret:
                flags = flags + [f".rv{i}" for i in range(self.n_results or 0)
                                 if f".rv{i}" not in flags]
            for n in list(candidates) + flags:
                v = self.env.get(n)
                if v is None:
                    continue
                if n not in carried:
                    if n in head_live or n in live_after or n in flags:
                        carried[n] = v.type
                        grew = True
                    continue
                t = self.join(n, carried[n], v.type)
                if t is not carried[n]:
                    carried[n] = t
                    grew = True
            if grew:
                raise _Restart()
            if use_while and rng is not None:
                self.env[counter] = self.b.value("arith.addi", self.env[counter], rng[2])
            vals = []
            for n, t in zip(names, types):
                v = self.env.get(n)
                if v is None:
                    v = self.b.const(0, t)
                vals.append(self.b.cast(v, t))
            self.b.create("scf.yield", vals, result_types=[])
            return op, exit_kind
        finally:
            if self.loops and self.loops[-1] is ctx:
                self.loops.pop()
            self.env, self.b.block = outer_env, outer_block

    def join(self, name, a, b):
        """The type of variable `name` where control flow joins values of types a and b."""
        try:
            return unify(a, b)
        except TypeError:
            raise self.error(self.src.tree, f"variable '{name}' holds a {a} on one path and a "
                                            f"{b} on another", "give each array its own name") \
                from None

    def bind_target(self, target, iv, rng):
        norm = rng[3]
        if norm is None:
            self.env[target] = iv
            start = _const_value(rng[0])
            if start is not None and start >= 0:
                self.nonneg.add(iv)  # counts up from a non-negative start
        else:
            start, step = norm
            self.env[target] = self.b.value("arith.addi", start,
                                            self.b.value("arith.muli", iv, step), hint=target)

    def loop_condition(self, ctx, test, rng, counter, node):
        b = self.b
        stop = None
        names = ([ctx.brk] if ctx.has_brk else []) + ([".ret"] if ctx.has_ret else [])
        flags = [self.env[f] for f in names if f in self.env]
        for v in flags:
            stop = v if stop is None else b.value("arith.ori", stop, v)

        def main():
            if rng is not None:
                return b.value("arith.cmpi", self.env[counter], rng[1], pred="slt")
            return self.truth(self.expr(test), test)

        if stop is None:
            return main()
        go = b.value("arith.xori", stop, b.const(True, I1))
        return self.select_lazy(go, main, lambda: b.const(False, I1), I1)

    def select_lazy(self, cond, then_fn, else_fn, type):
        """scf.if cond -> type { then_fn() } else { else_fn() }: short-circuit evaluation."""
        outer = self.b.block
        op = Op("scf.if", [cond], [type], regions=[])
        for fn in (then_fn, else_fn):
            region, block = self.b.block_region()
            op.regions.append(region)
            region.parent = op
            self.b.block = block
            v = self.b.cast(fn(), type)
            self.b.create("scf.yield", [v], result_types=[])
        self.b.block = outer
        self.b.insert(op)
        return op.result

    # --- expressions --------------------------------------------------------------------

    def read(self, name, node):
        v = self.env.get(name)
        if v is not None:
            return v
        if name in self.locals:
            raise self.error(node, f"local variable '{name}' is used before it is assigned "
                                   "(or is unbound on some path)",
                             "assign it on every path before this use")
        raise self.error(node, f"name '{name}' is not defined")

    def expr_multi(self, node, allow_void=False, allow_array=False):
        """Lower an expression that may be a tuple (tuple literal or a call's results)."""
        if isinstance(node, ast.Tuple):
            return tuple(self.expr(e, allow_array) for e in node.elts)
        if isinstance(node, ast.Call):
            vals = self.call(node)
            if len(vals) == 1:
                return vals[0]
            if not vals and not allow_void:
                raise self.error(node, "this call returns no value")
            return tuple(vals)
        return self.expr(node, allow_array)

    def expr(self, node, allow_array=False):
        v = self._expr(node)
        if v.type.is_memref and not allow_array:
            raise self.unsupported(node, "an array used as a value here",
                                   "index it (a[i], a[i, j]), take a.shape[k] or len(a), pass "
                                   "it to another @lldiff.jit function or name it (b = a)")
        return v

    def _expr(self, node):
        self.b.loc = self.loc(node)
        kind = type(node)
        if kind in _UNSUPPORTED_EXPRS:
            raise self.unsupported(node, *_UNSUPPORTED_EXPRS[kind])
        if kind is ast.Constant:
            return self.constant(node.value, node)
        if kind is ast.Name:
            if node.id in self.env:
                return self.env[node.id]
            if node.id in self.locals:
                return self.read(node.id, node)
            return self.global_value(node.id, node)
        if kind is ast.Attribute:
            return self.attribute_value(node)
        if kind is ast.BinOp:
            return self.binop(node.op, self.expr(node.left), self.expr(node.right), node)
        if kind is ast.UnaryOp:
            return self.unaryop(node)
        if kind is ast.BoolOp:
            return self.boolop(node)
        if kind is ast.Compare:
            return self.compare(node)
        if kind is ast.IfExp:
            return self.ifexp(node)
        if kind is ast.Call:
            vals = self.call(node)
            if len(vals) != 1:
                raise self.unsupported(node, "using a tuple-returning call as a single value",
                                       "unpack its results: a, b = f(...)")
            return vals[0]
        if kind is ast.Tuple:
            raise self.unsupported(node, "a tuple as a value",
                                   "tuples exist only as function results and in unpacking "
                                   "assignments (a, b = b, a)")
        if kind is ast.Subscript:
            return self.subscript_load(node)
        raise self.unsupported(node, f"the expression {kind.__name__}")

    # --- arrays -------------------------------------------------------------------------

    def array_access(self, node):
        """(memref value, normalized i64 indices) for a[i], a[i, j] or a[i][j]."""
        idx_nodes = []
        base = node
        while isinstance(base, ast.Subscript):
            sl = base.slice
            elts = sl.elts if isinstance(sl, ast.Tuple) else [sl]
            idx_nodes[:0] = elts
            base = base.value
        shape = _shape_attr(base)
        if shape is not None:
            raise self.unsupported(node, "this use of .shape", "use a.shape[k] with a constant k")
        a = self._expr(base)
        if not a.type.is_memref:
            raise self.unsupported(node, f"subscripting (indexing or slicing) a {a.type} value",
                                   "only arrays (numpy arguments) can be indexed")
        if len(idx_nodes) != a.type.rank:
            raise self.unsupported(node, f"{len(idx_nodes)} indices into a {a.type.rank}-D "
                                         "array (rows, slices and views)",
                                   "index every dimension: a[i, j] or a[i][j]")
        idx = []
        for k, n in enumerate(idx_nodes):
            if isinstance(n, ast.Slice):
                raise self.unsupported(n, "slicing", "loop over the indices instead")
            i = self.expr(n)
            if i.type.is_float:
                raise self.error(n, "array indices must be integers, not float",
                                 "convert with int(...)")
            idx.append(self.index(a, k, self.as_int(i), n))
        return a, idx

    def index(self, a, axis, i, node):
        """Python's negative indices, and IndexError out of range under boundscheck."""
        b = self.b
        dim = b.value("lldiff.dim", a, axis=axis)
        c = getattr(i, "op", None)
        const = c.attrs["value"] if c is not None and c.name == "arith.constant" else None
        zero = b.const(0, I64)
        if const is None:
            if not self.known_nonneg(i):
                neg = b.value("arith.cmpi", i, zero, pred="slt")
                i = b.value("arith.select", neg, b.value("arith.addi", i, dim), i)
        elif const < 0:
            i = b.value("arith.addi", i, dim)
        if self.boundscheck:
            low = b.value("arith.cmpi", i, zero, pred="slt")
            high = b.value("arith.cmpi", i, dim, pred="sge")
            self.raise_if(b.value("arith.ori", low, high), "IndexError",
                          f"index out of bounds for axis {axis}")
        return i

    def known_nonneg(self, v, depth=0):
        """Whether int `v` is certainly >= 0: an induction variable counting up from a
        non-negative start, an extent, a non-negative constant, or sums and products of them
        (no select for Python's negative indices is needed then)."""
        if v in self.nonneg:
            return True
        op = getattr(v, "op", None)
        if op is None or depth > 8:
            return False
        if op.name == "arith.constant":
            return op.attrs["value"] >= 0
        if op.name == "lldiff.dim":
            return True
        if op.name in ("arith.addi", "arith.muli"):
            return all(self.known_nonneg(u, depth + 1) for u in op.operands)
        return False

    def subscript_load(self, node):
        shape = _shape_attr(node.value)
        if shape is not None:
            a = self._expr(shape)
            if not a.type.is_memref:
                raise self.unsupported(node, ".shape of a scalar")
            k = node.slice
            if not (isinstance(k, ast.Constant) and type(k.value) is int):
                raise self.unsupported(k, "a non-constant index into .shape",
                                       "use a.shape[0] or a.shape[1]")
            axis = k.value + a.type.rank if k.value < 0 else k.value
            if not 0 <= axis < a.type.rank:
                raise self.error(k, f"a {a.type.rank}-D array has no axis {k.value}")
            return self.b.value("lldiff.dim", a, axis=axis)
        a, idx = self.array_access(node)
        v = self.b.value("lldiff.load", a, *idx)
        if v.type is F32:
            v = self.b.value("arith.extf", v, to=F64)
        return v

    def subscript_store(self, target, value, node):
        a, idx = self.array_access(target)
        self.store_at(a, idx, value, node)

    def store_at(self, a, idx, value, node):
        elem = a.type.elem
        if value.type.is_memref:
            raise self.unsupported(node, "storing an array into an array element")
        if elem is I64:
            if value.type.is_float:
                value = self.float_to_int(value)
            value = self.as_int(value)
        else:
            value = self.as_float(value)
            if elem is F32:
                value = self.b.value("arith.truncf", value, to=F32)
        self.b.create("lldiff.store", [value, a] + idx)

    def constant(self, value, node):
        t = type_of_python_value(value)
        if t is not None:
            return self.b.const(value, t)
        if isinstance(value, str):
            raise self.unsupported(node, "a string", "lldiff functions compute with float, "
                                                     "int and bool")
        if isinstance(value, bytes):
            raise self.unsupported(node, "bytes", "lldiff functions compute with float, int "
                                                  "and bool")
        if value is None:
            raise self.unsupported(node, "None as a value", "use a number such as nan")
        if isinstance(value, complex):
            raise self.unsupported(node, "a complex number", "use two floats")
        raise self.unsupported(node, f"the constant {value!r}")

    def lookup_global(self, name):
        if name not in self.globals:
            import builtins
            if hasattr(builtins, name):
                return intr.lookup(getattr(builtins, name))
            return None
        return intr.lookup(self.globals[name])

    def resolve(self, node):
        """Resolve a Name/Attribute chain to a Python object from globals."""
        if isinstance(node, ast.Name):
            if node.id in self.env:
                return None
            if node.id in self.globals:
                return self.globals[node.id]
            import builtins
            if hasattr(builtins, node.id):
                return getattr(builtins, node.id)
            raise self.error(node, f"name '{node.id}' is not defined")
        if isinstance(node, ast.Attribute):
            base = self.resolve(node.value)
            if base is None or not _is_module(base):
                raise self.unsupported(node.value, f"attribute access '.{node.attr}' on a value",
                                       "only module attributes such as math.pi or np.sin can "
                                       "be used")
            if not hasattr(base, node.attr):
                raise self.error(node, f"module '{base.__name__}' has no attribute '{node.attr}'")
            return getattr(base, node.attr)
        return None

    def global_value(self, name, node):
        obj = self.resolve(node)
        return self.frozen(obj, node, name)

    def attribute_value(self, node):
        obj = self.resolve(node)
        base = self.resolve(node.value)
        if getattr(base, "__name__", None) == "math" and node.attr in intr.MATH_CONSTANTS:
            return self.b.const(intr.MATH_CONSTANTS[node.attr], F64)
        if getattr(base, "__name__", None) == "numpy" and node.attr in intr.NP_CONSTANTS:
            return self.b.const(intr.NP_CONSTANTS[node.attr], F64)
        return self.frozen(obj, node, ast.unparse(node))

    def frozen(self, obj, node, name):
        """A module-level value used in the function: numbers are frozen as constants."""
        if isinstance(obj, (bool, int, float)):
            if isinstance(obj, int) and not isinstance(obj, bool) and \
                    not -(1 << 63) <= obj < (1 << 63):
                raise self.error(node, f"the global '{name}' does not fit in a 64-bit int")
            return self.b.const(obj, type_of_python_value(obj))
        np = intr._numpy()
        if np is not None and isinstance(obj, np.generic) and type_of_python_value(obj.item()):
            return self.b.const(obj.item(), type_of_python_value(obj.item()))
        kind = type(obj).__name__
        raise self.unsupported(node, f"the global '{name}' of type {kind} as a value",
                               "module-level int, float and bool constants can be used")

    def truth(self, v, node=None):
        b = self.b
        if v.type is I1:
            return v
        if v.type is I64:
            return b.value("arith.cmpi", v, b.const(0, I64), pred="ne")
        return b.value("arith.cmpf", v, b.const(0.0, v.type), pred="une")

    def raise_if(self, cond, exc, msg):
        self.b.create("lldiff.raise_if", [cond], {"exc": exc, "msg": msg})

    def as_float(self, v):
        return self.b.cast(v, F64) if not v.type.is_float else v

    def as_int(self, v):
        return self.b.cast(v, I64) if v.type is I1 else v

    def binop(self, op, a, c, node):
        b = self.b
        sym = _BINOPS.get(type(op))
        if sym in ("@", "&", "|", "^", "<<", ">>"):
            raise self.unsupported(node, f"the operator '{sym}'",
                                   "use + - * / // % ** on numbers")
        if sym == "**":
            return self.power(a, c, node)
        if a.type.is_int and c.type.is_int and sym != "/":
            x, y = self.as_int(a), self.as_int(c)
            if sym == "+":
                return b.value("arith.addi", x, y)
            if sym == "-":
                return b.value("arith.subi", x, y)
            if sym == "*":
                return b.value("arith.muli", x, y)
            zero = b.const(0, I64)
            self.raise_if(b.value("arith.cmpi", y, zero, pred="eq"), "ZeroDivisionError",
                          "integer division or modulo by zero")
            if sym == "//":
                return b.value("arith.floordivsi", x, y)
            # Python's %: the sign follows the divisor.
            r = b.value("arith.remsi", x, y)
            fix = b.value("arith.andi", b.value("arith.cmpi", r, zero, pred="ne"),
                          b.value("arith.cmpi", b.value("arith.xori", r, y), zero, pred="slt"))
            return b.value("arith.addi", r, b.value("arith.select", fix, y, zero))
        t = unify(a.type, c.type)
        t = t if t.is_float else F64
        x, y = b.cast(a, t), b.cast(c, t)
        if sym == "+":
            return b.value("arith.addf", x, y)
        if sym == "-":
            return b.value("arith.subf", x, y)
        if sym == "*":
            return b.value("arith.mulf", x, y)
        if _const_value(y) in (None, 0.0):
            self.raise_if(b.value("arith.cmpf", y, b.const(0.0, t), pred="oeq"),
                          "ZeroDivisionError", "float division by zero" if sym == "/"
                          else "float floor division by zero" if sym == "//" else "float modulo")
        if sym == "/":
            return b.value("arith.divf", x, y)
        return self.float_divmod(x, y, sym == "//")

    def float_divmod(self, x, y, want_div):
        """CPython's float_divmod: Python's // and % on floats, exactly."""
        b = self.b
        t = x.type
        zero = b.const(0.0, t)
        mod = b.value("arith.remf", x, y)
        ne0 = b.value("arith.cmpf", mod, zero, pred="une")
        ylt = b.value("arith.cmpf", y, zero, pred="olt")
        mlt = b.value("arith.cmpf", mod, zero, pred="olt")
        fix = b.value("arith.andi", ne0, b.value("arith.xori", ylt, mlt))
        if not want_div:
            moved = b.value("arith.select", fix, b.value("arith.addf", mod, y), mod)
            return b.value("arith.select", ne0, moved, b.value("math.copysign", zero, y))
        div = b.value("arith.divf", b.value("arith.subf", x, mod), y)
        div = b.value("arith.select", fix, b.value("arith.subf", div, b.const(1.0, t)), div)
        fl = b.value("math.floor", div)
        up = b.value("arith.cmpf", b.value("arith.subf", div, fl), b.const(0.5, t), pred="ogt")
        fl = b.value("arith.select", up, b.value("arith.addf", fl, b.const(1.0, t)), fl)
        nz = b.value("arith.cmpf", div, zero, pred="une")
        signed = b.value("math.copysign", zero, b.value("arith.divf", x, y))
        return b.value("arith.select", nz, fl, signed)

    def power(self, a, c, node):
        b = self.b
        cv = _const_value(c)
        if a.type.is_int and c.type.is_int:
            x, y = self.as_int(a), self.as_int(c)
            if cv is not None and cv < 0:
                return self.float_pow(self.as_float(x), self.as_float(y), node)
            if cv is None:
                self.raise_if(b.value("arith.cmpi", y, b.const(0, I64), pred="slt"), "ValueError",
                              "int ** negative int is not supported in lldiff (the result "
                              "type would depend on the value); write float(a) ** b")
            return b.value("math.ipowi", x, y)
        if a.type.is_float and c.type.is_int:
            y = self.as_int(c)
            if cv is None or cv < 0:
                self.zero_pow_check(a, b.value("arith.cmpi", y, b.const(0, I64), pred="slt"))
            return b.value("math.fpowi", a, y)
        t = unify(a.type, c.type)
        t = t if t.is_float else F64
        return self.float_pow(b.cast(a, t), b.cast(c, t), node)

    def float_pow(self, x, y, node):
        b = self.b
        cv = _const_value(y)
        if cv is None or cv < 0:
            self.zero_pow_check(x, b.value("arith.cmpf", y, b.const(0.0, y.type), pred="olt"))
        return b.value("math.powf", x, y)

    def zero_pow_check(self, x, neg):
        b = self.b
        if _const_value(x) not in (None, 0.0):
            return
        is0 = b.value("arith.cmpf", x, b.const(0.0, x.type), pred="oeq")
        self.raise_if(b.value("arith.andi", is0, neg), "ZeroDivisionError",
                      "0.0 cannot be raised to a negative power")

    def unaryop(self, node):
        b = self.b
        if isinstance(node.op, ast.Not):
            return b.value("arith.xori", self.truth(self.expr(node.operand)), b.const(True, I1))
        if isinstance(node.op, ast.Invert):
            raise self.unsupported(node, "the operator '~'", "use - or not")
        operand = node.operand
        if isinstance(node.op, ast.USub) and isinstance(operand, ast.Constant) and \
                type_of_python_value(operand.value) in (I64, F64):
            return self.constant(-operand.value, node)
        v = self.expr(operand)
        if isinstance(node.op, ast.UAdd):
            return self.as_int(v)
        if v.type.is_float:
            return b.value("arith.negf", v)
        return b.value("arith.subi", b.const(0, I64), self.as_int(v))

    def boolop(self, node):
        """`a and b` / `a or b` with short-circuit evaluation and Python's value semantics."""
        is_and = isinstance(node.op, ast.And)
        first = self.expr(node.values[0])
        rest = node.values[1:]

        def combine(left, right_nodes):
            if not right_nodes:
                return left
            # Type of the whole: every operand's type unified (lowered lazily inside the if).
            t = unify(left.type, self.probe_type(right_nodes))
            cond = self.truth(left)
            if not is_and:
                cond = self.b.value("arith.xori", cond, self.b.const(True, I1))
            return self.select_lazy(cond, lambda: combine(self.expr(right_nodes[0]),
                                                          right_nodes[1:]),
                                    lambda: left, t)

        return combine(first, rest)

    def probe_type(self, nodes):
        """The unified type of expressions `nodes`, lowered into a scratch block and dropped.

        Short-circuit forms need their result type before lowering their operands into the
        branches of an scf.if.
        """
        outer, saved = self.b.block, dict(self.env)
        self.b.block = Block()
        try:
            t = None
            for n in nodes:
                v = self.expr(n)
                t = v.type if t is None else unify(t, v.type)
            return t
        finally:
            self.b.block, self.env = outer, saved

    def compare(self, node):
        left = self.expr(node.left)
        pairs = list(zip(node.ops, node.comparators))
        for op, _ in pairs:
            if type(op) in _CMP_NAMES:
                raise self.unsupported(node, f"the operator '{_CMP_NAMES[type(op)]}'",
                                       "compare numbers with < <= > >= == !=")

        def chain(lhs, i):
            op, rhs_node = pairs[i]
            rhs = self.expr(rhs_node)
            c = self.cmp(op, lhs, rhs)
            if i + 1 == len(pairs):
                return c
            return self.select_lazy(c, lambda: chain(rhs, i + 1),
                                    lambda: self.b.const(False, I1), I1)

        return chain(left, 0)

    def cmp(self, op, a, c):
        fp, ip = _CMP[type(op)]
        if a.type.is_int and c.type.is_int:
            if a.type is I1 and c.type is I1 and ip in ("eq", "ne"):
                return self.b.value("arith.cmpi", a, c, pred=ip)
            return self.b.value("arith.cmpi", self.as_int(a), self.as_int(c), pred=ip)
        t = unify(a.type, c.type)
        return self.b.value("arith.cmpf", self.b.cast(a, t), self.b.cast(c, t), pred=fp)

    def ifexp(self, node):
        cond = self.truth(self.expr(node.test))
        t = self.probe_type([node.body, node.orelse])
        return self.select_lazy(cond, lambda: self.expr(node.body),
                                lambda: self.expr(node.orelse), t)

    # --- calls --------------------------------------------------------------------------

    def call(self, node):
        """Lower a call; return the list of result values."""
        f = node.func
        if isinstance(f, ast.Attribute):
            base_obj = self.resolve_base_quiet(f.value)
            if base_obj is None:
                raise self.unsupported(f.value, f"the method call '.{f.attr}()' (attribute "
                                                f"access on a value)",
                                       "call functions of math or numpy, e.g. math.sqrt(x)")
        if isinstance(f, ast.Name) and f.id in self.env:
            raise self.error(f, f"'{f.id}' is a number, not a function")
        obj = self.resolve(f)
        kind = intr.lookup(obj)
        name = ast.unparse(f)
        if kind is None:
            if any(isinstance(a, ast.Starred) for a in node.args):
                star = next(a for a in node.args if isinstance(a, ast.Starred))
                raise self.unsupported(star, "a starred argument", "pass arguments one by one")
            if node.keywords:
                raise self.unsupported(f,
                                       f"calling '{name}' with keyword arguments (it is not an "
                                       "lldiff function)", _SUBSET_HINT)
            args = [self.expr(a, allow_array=True) for a in node.args]
            try:
                got = self.resolve_callee(obj, [a.type for a in args]) if callable(obj) else None
            except CompileError as e:
                if e.filename is not None:
                    raise
                raise self.error(f, e.message, e.hint) from None
            if got is None:
                raise self.unsupported(f, f"calling '{name}' (not an @lldiff.jit function or a "
                                          "supported math/numpy/builtin function)",
                                       "decorate it with @lldiff.jit, or use math/numpy "
                                       "scalar functions")
            callee, needed = got[0], got[1]
            attrs = dict(got[2]) if len(got) > 2 else {}  # e.g. a user rule: custom_jvp
            for fn in needed:
                self.callees.setdefault(fn.name, fn)
            self.callees.setdefault(callee.name, callee)
            attrs["callee"] = callee.name
            op = self.b.create("func.call", args, attrs, result_types=callee.result_types)
            return op.results
        if kind[0] == "builtin" and kind[1] in ("print", "len", "range"):
            return [self.builtin(kind[1], node)]
        if kind[0] == "np" and intr.NP_NAMES[kind[1]][0] == "alloc":
            return [self.np_alloc(kind[1], node)]
        for a in node.args:
            if isinstance(a, ast.Starred):
                raise self.unsupported(a, "a starred argument", "pass arguments one by one")
        if node.keywords:
            kw = node.keywords[0]
            raise self.unsupported(kw, f"keyword arguments to '{name}'",
                                   "pass arguments by position")
        space, fname = kind
        if space == "builtin":
            return [self.builtin(fname, node)]
        if space == "math":
            return [self.math_call(fname, node)]
        return [self.np_call(fname, node)]

    def resolve_base_quiet(self, node):
        if isinstance(node, ast.Name) and node.id in self.env:
            return None
        try:
            obj = self.resolve(node)
        except CompileError:
            return None
        return obj if _is_module(obj) else None

    def nargs(self, node, name, lo, hi=None):
        n = len(node.args)
        hi = lo if hi is None else hi
        if not lo <= n <= hi:
            want = f"{lo}" if lo == hi else f"{lo} to {hi}" if hi < 99 else f"at least {lo}"
            raise self.error(node, f"{name}() takes {want} arguments here, got {n}; other forms "
                                   "are not supported")

    def builtin(self, name, node):
        b = self.b
        if name == "len" and len(node.args) == 1 and not node.keywords:
            v = self.expr(node.args[0], allow_array=True)
            if v.type.is_memref:
                return b.value("lldiff.dim", v, axis=0)
        if name in ("print", "len", "range"):
            what = {"print": "print()", "len": "len() of a scalar", "range": "range() outside "
                    "a for loop"}[name]
            raise self.unsupported(node.func, what, _SUBSET_HINT)
        if name == "float" and len(node.args) == 1 and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            s = node.args[0].value.strip().lower()
            if s in ("inf", "+inf", "-inf", "nan", "infinity", "-infinity", "+infinity"):
                return b.const(float(s), F64)
        if name in ("min", "max"):
            self.nargs(node, name, 2, 99)
            vals = [self.expr(a) for a in node.args]
            acc = vals[0]
            for v in vals[1:]:
                t = unify(acc.type, v.type)
                x, y = b.cast(acc, t), b.cast(v, t)
                better = self.cmp(ast.Gt() if name == "max" else ast.Lt(), y, x)
                acc = b.value("arith.select", better, y, x)
            return acc
        self.nargs(node, name, 1)
        v = self.expr(node.args[0])
        if name == "abs":
            if v.type.is_float:
                return b.value("math.absf", v)
            x = self.as_int(v)
            neg = b.value("arith.cmpi", x, b.const(0, I64), pred="slt")
            return b.value("arith.select", neg, b.value("arith.subi", b.const(0, I64), x), x)
        if name == "float":
            return self.as_float(v)
        if name == "bool":
            return self.truth(v)
        if name == "int":
            return self.as_int(v) if v.type.is_int else self.float_to_int(v)
        if name == "round":
            return self.as_int(v) if v.type.is_int else \
                self.float_to_int(b.value("math.roundeven", v))
        raise self.unsupported(node.func, f"the builtin {name}()")

    def float_to_int(self, v):
        """int(v) for a float: truncation, with Python's errors for nan and out-of-range."""
        b = self.b
        self.raise_if(b.value("math.isnan", v), "ValueError", "cannot convert float NaN to integer")
        inside = b.value("arith.andi",
                         b.value("arith.cmpf", v, b.const(I64_MIN_F, v.type), pred="oge"),
                         b.value("arith.cmpf", v, b.const(I64_LIMIT_F, v.type), pred="olt"))
        self.raise_if(b.value("arith.xori", inside, b.const(True, I1)), "OverflowError",
                      "cannot convert float infinity or a value beyond the 64-bit range to int")
        return b.value("arith.fptosi", v, to=I64)

    def math_call(self, name, node):
        b = self.b
        if name in intr.MATH_UNARY:
            self.nargs(node, f"math.{name}", 1)
            return b.value(intr.MATH_UNARY[name], self.as_float(self.expr(node.args[0])))
        if name == "log":
            self.nargs(node, "math.log", 1, 2)
            x = b.value("math.log", self.as_float(self.expr(node.args[0])))
            if len(node.args) == 1:
                return x
            base = b.value("math.log", self.as_float(self.expr(node.args[1])))
            return b.value("arith.divf", x, base)
        if name in intr.MATH_BINARY:
            self.nargs(node, f"math.{name}", 2)
            x, y = (self.as_float(self.expr(a)) for a in node.args)
            return b.value(intr.MATH_BINARY[name], x, y)
        if name in intr.MATH_TESTS:
            self.nargs(node, f"math.{name}", 1)
            v = self.expr(node.args[0])
            if v.type.is_int:
                return b.const(name == "isfinite", I1)
            return b.value(intr.MATH_TESTS[name], v)
        if name in intr.MATH_TO_INT:
            self.nargs(node, f"math.{name}", 1)
            v = self.expr(node.args[0])
            if v.type.is_int:
                return self.as_int(v)
            return self.float_to_int(b.value(intr.MATH_TO_INT[name], v))
        if name == "factorial":
            self.nargs(node, "math.factorial", 1)
            v = self.expr(node.args[0])
            if not v.type.is_int:
                raise self.unsupported(node.func, f"math.factorial of a {v.type} "
                                                  "(Python accepts only ints)",
                                       "pass an int, e.g. math.factorial(int(x))")
            n = self.as_int(v)
            self.raise_if(b.value("arith.cmpi", n, b.const(0, I64), pred="slt"), "ValueError",
                          "factorial() not defined for negative values")
            self.raise_if(b.value("arith.cmpi", n, b.const(20, I64), pred="sgt"),
                          "OverflowError", "factorial() of n > 20 does not fit in a 64-bit int")
            return b.value("lldiff.factorial", n)
        raise self.unsupported(node.func, f"math.{name}", "see the README for the supported "
                                                          "math functions")

    def np_alloc(self, name, node):
        """np.zeros/ones/empty(n) or ((n, m)), dtype float64 (default), float32 or int64."""
        b = self.b
        np = intr._numpy()
        self.nargs(node, f"np.{name}", 1)
        dtype = F64
        for kw in node.keywords:
            if kw.arg != "dtype":
                raise self.unsupported(kw, f"the keyword '{kw.arg}' of np.{name}",
                                       "only dtype= is supported")
            try:
                obj = self.resolve(kw.value)
            except CompileError:
                obj = None
            want = {float: F64, int: I64}.get(obj) if isinstance(obj, type) else None
            if want is None and np is not None and obj is not None:
                try:
                    want = ARRAY_DTYPES.get(np.dtype(obj).str.lstrip("<=|"))
                except TypeError:
                    want = None
            if want is None:
                raise self.unsupported(kw.value, "this dtype",
                                       "use np.float64, np.float32 or np.int64")
            dtype = want
        shape_node = node.args[0]
        dims = shape_node.elts if isinstance(shape_node, ast.Tuple) else [shape_node]
        if len(dims) not in (1, 2):
            raise self.unsupported(shape_node, f"a {len(dims)}-D array",
                                   "arrays have 1 or 2 dimensions")
        sizes = []
        for d in dims:
            v = self.expr(d)
            if v.type.is_float:
                raise self.error(d, "array dimensions must be integers, not float")
            v = self.as_int(v)
            self.raise_if(b.value("arith.cmpi", v, b.const(0, I64), pred="slt"), "ValueError",
                          "negative dimensions are not allowed")
            sizes.append(v)
        t = memref(dtype, len(sizes))
        fill = intr.NP_NAMES[name][1]
        attrs = {"type": t} if fill is None else {"type": t, "fill": fill}
        return b.create("lldiff.alloc", sizes, attrs).result

    def np_call(self, name, node):
        b = self.b
        kind, op = intr.NP_NAMES[name]
        if kind in ("binary", "npmax", "npmin"):
            self.nargs(node, f"np.{name}", 2)
            x, y = (self.as_float(self.expr(a)) for a in node.args)
            if kind == "binary":
                return b.value(op, x, y)
            # np.maximum/minimum propagate NaN from either side.
            pick = b.value("arith.cmpf", x, y, pred="ogt" if kind == "npmax" else "olt")
            r = b.value("arith.select", pick, x, y)
            nan_x = b.value("math.isnan", x)
            return b.value("arith.select", nan_x, x, r)
        self.nargs(node, f"np.{name}", 1)
        v = self.expr(node.args[0])
        if kind == "test":
            return b.const(name == "isfinite", I1) if v.type.is_int else b.value(op, v)
        x = self.as_float(v)
        if kind == "unary":
            return b.value(op, x)
        if kind == "square":
            return b.value("arith.mulf", x, x)
        # np.sign: -1, 0, +1, nan for nan.
        zero = b.const(0.0, x.type)
        pos = b.value("arith.uitofp", b.value("arith.cmpf", x, zero, pred="ogt"), to=x.type)
        neg = b.value("arith.uitofp", b.value("arith.cmpf", x, zero, pred="olt"), to=x.type)
        s = b.value("arith.subf", pos, neg)
        return b.value("arith.select", b.value("math.isnan", x), x, s)


def _shape_attr(node):
    """X for the node `X.shape`, else None."""
    if isinstance(node, ast.Attribute) and node.attr == "shape":
        return node.value
    return None


def _is_module(obj):
    import types
    return isinstance(obj, types.ModuleType)


def _const_value(v):
    op = getattr(v, "op", None)
    if op is not None and op.name == "arith.constant":
        return op.attrs["value"]
    return None
