"""Progress bars for long operations (`vectorize(progress=True)`, `compile(progress=True)`).

Nothing is printed unless a caller asks for a bar; a bar draws on stderr, tqdm-style, and
is safe to advance from several threads. Must not import numpy or the compiler.
"""

import threading

__all__ = ["Bar"]


class Bar:
    """A tqdm-style progress bar on stderr: `name: 45%|####      | 450000/1000000 [0.3s]`."""

    def __init__(self, name, total, width=30):
        import sys
        import time
        self.name, self.total, self.width = name, total, width
        self.done = 0
        self.lock = threading.Lock()
        self.t0 = time.perf_counter()
        self.out = sys.stderr
        self.draw()

    def add(self, k):
        with self.lock:
            self.done += k
            self.draw()

    def draw(self):
        import time
        frac = self.done / self.total if self.total else 1.0
        fill = int(frac * self.width)
        bar = "#" * fill + " " * (self.width - fill)
        self.out.write(f"\r{self.name}: {frac * 100:3.0f}%|{bar}| {self.done}/{self.total} "
                       f"[{time.perf_counter() - self.t0:.1f}s]")
        self.out.flush()

    def close(self):
        self.out.write("\n")
        self.out.flush()
