"""Finds a Python function's source and parses it to an `ast.FunctionDef` with true positions.

Owns source retrieval and location-to-message formatting for compile errors. Must not lower
anything.
"""

import ast
import inspect
import textwrap

from ..errors import CompileError

__all__ = ["Source", "get_source"]


class Source:
    """A parsed function with the file's own line numbers and columns."""

    def __init__(self, fn, tree, filename, lines, first_line, indent):
        self.fn = fn
        self.tree = tree  # ast.FunctionDef, positions relative to the dedented snippet
        self.filename = filename
        self.lines = lines  # the snippet's original (not dedented) lines
        self.first_line = first_line
        self.indent = indent

    def position(self, node):
        """(file line, 1-based file column) of an ast node."""
        line = self.first_line + getattr(node, "lineno", 1) - 1
        col = getattr(node, "col_offset", 0) + self.indent + 1
        return line, col

    def error(self, node, message, hint=None):
        line, col = self.position(node)
        idx = line - self.first_line
        text = self.lines[idx] if 0 <= idx < len(self.lines) else None
        return CompileError(message, self.filename, line, col, text, hint)


def get_source(fn):
    name = getattr(fn, "__qualname__", repr(fn))
    try:
        lines, first = inspect.getsourcelines(fn)
        filename = inspect.getsourcefile(fn) or inspect.getfile(fn)
    except (OSError, TypeError) as e:
        raise CompileError(
            f"cannot read the source code of {name}: {e}",
            hint="lldiff compiles functions from their source; define them in a .py file "
                 "(functions typed into the REPL or created by exec have no source to read)")
    text = "".join(lines)
    dedented = textwrap.dedent(text)
    indent = len(lines[0]) - len(lines[0].lstrip()) if lines else 0
    if dedented == text:
        indent = 0
    try:
        module = ast.parse(dedented)
    except SyntaxError as e:
        raise CompileError(f"cannot parse the source of {name}: {e.msg}", filename,
                           first + (e.lineno or 1) - 1, (e.offset or 1) + indent)
    node = module.body[0] if module.body else None
    if isinstance(node, (ast.Assign, ast.Expr)) and "lambda" in text:
        src = Source(fn, node, filename, lines, first, indent)
        lam = next((n for n in ast.walk(node) if isinstance(n, ast.Lambda)), node)
        raise src.error(lam, "lambda functions are not supported in lldiff functions",
                        "define the function with `def` in a .py file")
    if isinstance(node, ast.AsyncFunctionDef):
        src = Source(fn, node, filename, lines, first, indent)
        raise src.error(node, "async functions are not supported in lldiff functions",
                        "use a plain `def` function")
    if not isinstance(node, ast.FunctionDef):
        raise CompileError(f"cannot find the definition of {name} in its source", filename, first, 1)
    return Source(fn, node, filename, lines, first, indent)
