"""IR -> IR transformations (installed as `lldiff.passes`). Imports only `lldiff.ir`."""

from .manager import PASSES, run_pipeline
from .canonicalize import canonicalize  # noqa: E402  (the function shadows its module name)
from .activity import analyze as analyze_activity
from .jvp import jvp_func, jvp_name
from .vjp import grad_func, vjp_func, vjp_name
from .effects import written_arguments
from .taylor import taylor_func

__all__ = ["canonicalize", "PASSES", "run_pipeline", "analyze_activity", "jvp_func", "jvp_name",
           "vjp_func", "vjp_name", "grad_func", "written_arguments", "taylor_func"]
