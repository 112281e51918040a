"""Python source -> typed IR. Imports only `lldiff.ir` (and the leaf `lldiff.errors`)."""

from .lower import lower_function, type_of_python_value
from .source import Source, get_source

__all__ = ["lower_function", "type_of_python_value", "Source", "get_source"]
