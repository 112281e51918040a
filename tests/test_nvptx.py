"""NVPTX (codegen/nvptx.py, runtime/cuda.py): PTX for the corpus' primal, jvp and vjp map
kernels assembles with ptxas for sm_70, sm_75, sm_80 and sm_90. CUDA 13's ptxas no longer
knows sm_70: `cuda.assemble` then uses another ptxas found (CI installs CUDA 12's wheel,
nvidia-cuda-nvcc-cu12, for it); with none, sm_70 is skipped, saying so.

Everywhere, no GPU needed; skipped when libdevice or ptxas cannot be found (CI installs
them with `pip install lldiff[cuda]`). PTX is generated in a subprocess: a bad intrinsic
aborts LLVM's NVPTX backend, which would take pytest down with it.
"""

import os
import re
import subprocess
import sys
import textwrap

import pytest

from lldiff.runtime import cuda

HERE = os.path.dirname(os.path.abspath(__file__))
ARCHS = ("sm_70", "sm_75", "sm_80", "sm_90")


def _toolkit():
    try:
        return cuda.find_libdevice(), cuda.find_ptxas()
    except cuda.CudaToolkitError as e:
        pytest.skip(str(e))


_SCRIPT = textwrap.dedent("""
    import math, os, sys, types
    sys.path.insert(0, {here!r})
    import corpus, lldiff
    from lldiff.codegen.nvptx import emit_kernel_module, kernel_name
    from lldiff.runtime import cuda
    out = sys.argv[1]
    ns = dict(vars(corpus))
    funcs = {{n: o for n, o in vars(corpus).items()
             if isinstance(o, types.FunctionType) and o.__module__ == corpus.__name__}}
    for n, fn in funcs.items():
        ns[n] = lldiff.jit(types.FunctionType(fn.__code__, ns, fn.__name__))
    texts, names = [], []
    for case in corpus.CASES:
        d = ns[case.fn.__name__]
        args = case.inputs[0]
        tys = tuple(d._arg_type("a%d" % i, a) for i, a in enumerate(args))
        try:
            primal = d._ir(tys)
        except Exception:
            continue
        specs = [primal]
        mask = tuple(t.is_float for t in tys)
        if any(mask) and any(t.is_float for t in primal.func.result_types):
            specs.append(d._derived_ir(tys, "jvp", mask, 1))
            specs.append(d._derived_ir(tys, "vjp", mask))
        for spec in specs:
            text, _ = emit_kernel_module(spec.module, spec.symbol)
            texts.append(text)
            names.append(kernel_name(spec.symbol))
    with open(os.path.join(out, "kernels.txt"), "w") as f:
        f.write("\\n".join(names))
    for arch in sys.argv[2:]:
        with open(os.path.join(out, arch + ".ptx"), "w") as f:
            f.write(cuda.ptx(texts, arch))
""")


@pytest.fixture(scope="module")
def corpus_ptx(tmp_path_factory):
    _toolkit()
    out = tmp_path_factory.mktemp("ptx")
    r = subprocess.run([sys.executable, "-c", _SCRIPT.format(here=HERE), str(out), *ARCHS],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    kernels = (out / "kernels.txt").read_text().split("\n")
    return kernels, {a: (out / f"{a}.ptx").read_text() for a in ARCHS}


@pytest.mark.parametrize("arch", ARCHS)
def test_corpus_kernels_assemble_with_ptxas(corpus_ptx, arch):
    kernels, ptx = corpus_ptx
    text = ptx[arch]
    assert f".target {arch}" in text
    entries = set(re.findall(r"\.entry\s+(\w+)\(", text))
    assert set(kernels) <= entries, set(kernels) - entries
    assert len(kernels) >= 200  # primal, jvp and vjp kernels of most of the corpus
    # libdevice is linked in: no math function is left for the driver to resolve
    assert not re.search(r"\.extern\s+\.func[^\n]*__nv_", text)
    assert "llvm." not in re.sub(r"//.*", "", text)
    try:
        cuda.assemble(text, arch)  # raises with ptxas' message when it rejects the PTX
    except cuda.UnsupportedArch as e:
        pytest.skip(str(e))


def test_a_bessel_gradient_kernel_keeps_its_tape_in_the_thread(tmp_path):
    _toolkit()
    import lldiff
    sys.path.insert(0, HERE)
    import corpus
    from lldiff.ir import F64, I64
    d = lldiff.jit(corpus.besselj)
    text, _, _, _ = d._gpu_kernel((I64, F64), (False, True), (True,), arch="sm_80")
    report = cuda.assemble(text, "sm_80")
    # the tape's inline buffer is per-thread local memory (the stack frame), never malloc
    assert "malloc" not in text and "realloc" not in text
    assert re.search(r"(\d+) bytes stack frame", report)
    assert int(re.search(r"(\d+) bytes stack frame", report).group(1)) >= 4096


def test_missing_toolkit_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    for var in ("CUDA_HOME", "CUDA_PATH", "LLDIFF_PTXAS", "LLDIFF_LIBDEVICE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(cuda, "_roots", lambda: iter(()))
    with pytest.raises(cuda.CudaToolkitError, match=r"lldiff\[cuda\]"):
        cuda.find_ptxas()
    with pytest.raises(cuda.CudaToolkitError, match="libdevice"):
        cuda.find_libdevice()
