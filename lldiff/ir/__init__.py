"""lldiff's typed SSA IR with structured control flow (MLIR-shaped). Imports nothing of ours."""

from .builder import Builder
from .core import Block, BlockArg, Func, Loc, Module, Op, OpResult, Region, Value
from .interpreter import run as interpret
from .ops import OPS
from .printer import print_func, print_module
from .types import (F32, F64, I1, I64, TAPE, MemRefType, Type, VectorType, memref, unify,
                    vector)
from .verifier import VerificationError, verify

__all__ = ["Builder", "Block", "BlockArg", "Func", "Loc", "Module", "Op", "OpResult", "Region",
           "Value", "interpret", "OPS", "print_func", "print_module", "F32", "F64", "I1", "I64",
           "TAPE", "MemRefType", "Type", "VectorType", "memref", "unify", "vector",
           "VerificationError", "verify"]
