"""lldiff's exceptions. A leaf module: every layer may import it, it imports nothing of ours.

`CompileError` points at the user's source (file:line:col, the line, a caret) and says what
is supported instead; it is the only exception the compiler raises for unsupported code.
"""

__all__ = ["CompileError", "LLDiffError"]


class LLDiffError(Exception):
    """Base class of lldiff's own errors."""


class CompileError(LLDiffError):
    def __init__(self, message, filename=None, lineno=None, col=None, source_line=None,
                 hint=None):
        self.message = message
        self.filename = filename
        self.lineno = lineno
        self.col = col  # 1-based
        self.source_line = source_line
        self.hint = hint
        super().__init__(str(self))

    def __str__(self):
        head = self.message
        if self.filename is not None:
            head = f"{self.filename}:{self.lineno}:{self.col}: {self.message}"
        parts = [head]
        if self.source_line is not None:
            line = self.source_line.rstrip("\n")
            stripped = line.lstrip()
            indent = len(line) - len(stripped)
            parts.append("    " + stripped)
            if self.col is not None:
                parts.append("    " + " " * max(0, self.col - 1 - indent) + "^")
        if self.hint:
            parts.append(self.hint)
        return "\n".join(parts)

    def __reduce__(self):
        return (type(self), (self.message, self.filename, self.lineno, self.col,
                             self.source_line, self.hint))
