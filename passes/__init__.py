"""IR -> IR transformations (installed as `lldiff.passes`). Imports only `lldiff.ir`."""

from .manager import PASSES, run_pipeline
from .canonicalize import canonicalize  # noqa: E402  (the function shadows its module name)

__all__ = ["canonicalize", "PASSES", "run_pipeline"]
