"""Runs a pipeline of named passes over a module, verifying, timing and dumping on request.

A pipeline is a string like "canonicalize". `LLDIFF_DUMP=after:canonicalize` (or `all`)
prints the IR after a pass; `verify=True` runs the verifier after each pass (tests do).
IR -> IR only.
"""

import os
import sys
import time

from lldiff.ir import print_module, verify as verify_ir

from .canonicalize import canonicalize
from .tape import materialize_tapes

__all__ = ["PASSES", "run_pipeline"]

PASSES = {"canonicalize": canonicalize, "tape": materialize_tapes}


def run_pipeline(module, pipeline, verify=False, timings=None):
    dump = os.environ.get("LLDIFF_DUMP", "")
    for name in [p.strip() for p in pipeline.split(",") if p.strip()]:
        t0 = time.perf_counter()
        module = PASSES[name](module)
        if timings is not None:
            key = f"pass:{name}"
            timings[key] = timings.get(key, 0.0) + time.perf_counter() - t0
        if verify:
            verify_ir(module)
        if dump in ("all", f"after:{name}"):
            sys.stderr.write(f"// ----- after {name}\n{print_module(module)}")
    return module
