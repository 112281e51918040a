"""CUDA toolchain (installed as `lldiff.runtime.cuda`): finding libdevice and ptxas, and
turning NVPTX LLVM IR (lldiff.codegen.nvptx) into PTX.

`ptx(text, arch)`: parse the kernel module, link libdevice into it, make every function but
the kernels internal, optimize at O3 with the NVPTX target machine (whose passes include
NVVMReflect) and emit PTX. `assemble(ptx, arch)` runs ptxas on it. Where the tools are:

* libdevice (`libdevice.10.bc`): $LLDIFF_LIBDEVICE, then under $CUDA_HOME / $CUDA_PATH,
  the `nvidia-cuda-nvcc` / `nvidia-nvvm` wheels (site-packages/nvidia/...), the directory of
  the ptxas found, and /usr/local/cuda*;
* ptxas: $LLDIFF_PTXAS, $CUDA_HOME/bin, the PATH, the `nvidia-cuda-nvcc` wheel, /usr/local/cuda*.

`CudaToolkitError` says what is missing and how to get it (`pip install lldiff[cuda]`).
Never imports lldiff's IR or passes.
"""

import glob
import os
import shutil
import subprocess
import sys
import tempfile

__all__ = ["CudaToolkitError", "UnsupportedArch", "find_libdevice", "find_ptxas",
           "ptxas_candidates", "ptx", "assemble"]

_INSTALL = ("install the CUDA toolkit (and set CUDA_HOME) or `pip install lldiff[cuda]`, which "
            "installs NVIDIA's nvidia-cuda-nvcc wheel")


class CudaToolkitError(RuntimeError):
    """A CUDA tool lldiff needs (libdevice, ptxas) is not installed."""


class UnsupportedArch(CudaToolkitError):
    """The ptxas found does not know the GPU architecture asked for (CUDA 13 dropped sm_70)."""


def _roots():
    for var in ("CUDA_HOME", "CUDA_PATH"):
        if os.environ.get(var):
            yield os.environ[var]
    for site in sys.path:
        base = os.path.join(site, "nvidia")
        if os.path.isdir(base):
            yield from sorted(glob.glob(os.path.join(base, "*")))
    yield from sorted(glob.glob("/usr/local/cuda*"), reverse=True)


def find_ptxas():
    """The path of ptxas; CudaToolkitError when there is none."""
    for p in ptxas_candidates():
        return p
    raise CudaToolkitError(f"ptxas not found: {_INSTALL}")


def ptxas_candidates():
    """Every ptxas found, best first (see the module docstring), each once: `assemble` falls
    back to a later one for an architecture the first does not know (CUDA 13's ptxas dropped
    sm_70; the CUDA 12 wheel `nvidia-cuda-nvcc-cu12` still has it)."""
    seen = set()

    def new(p):
        if p and os.path.isfile(p) and os.path.realpath(p) not in seen:
            seen.add(os.path.realpath(p))
            return True
        return False

    got = os.environ.get("LLDIFF_PTXAS")
    if got:
        seen.add(os.path.realpath(got))
        yield got
    for var in ("CUDA_HOME", "CUDA_PATH"):
        if os.environ.get(var):
            p = os.path.join(os.environ[var], "bin", "ptxas")
            if new(p):
                yield p
    p = shutil.which("ptxas")
    if new(p):
        yield p
    for root in _roots():
        p = os.path.join(root, "bin", "ptxas")
        if new(p):
            yield p


def find_libdevice():
    """The path of libdevice.10.bc; CudaToolkitError when there is none."""
    got = os.environ.get("LLDIFF_LIBDEVICE")
    if got:
        return got
    roots = list(_roots())
    ptxas = shutil.which("ptxas")
    if ptxas:
        roots.append(os.path.dirname(os.path.dirname(os.path.realpath(ptxas))))
    for root in roots:
        for p in glob.glob(os.path.join(root, "nvvm", "libdevice", "libdevice*.bc")) + \
                glob.glob(os.path.join(root, "libdevice", "libdevice*.bc")):
            return p
    raise CudaToolkitError(f"libdevice (libdevice.10.bc) not found: {_INSTALL}")


_libdevice_bytes = None


def _libdevice():
    global _libdevice_bytes
    if _libdevice_bytes is None:
        with open(find_libdevice(), "rb") as f:
            _libdevice_bytes = f.read()
    return _libdevice_bytes


def _target_machine(arch):
    import llvmlite.binding as llvm
    llvm.initialize_all_targets()
    llvm.initialize_all_asmprinters()
    target = llvm.Target.from_triple("nvptx64-nvidia-cuda")
    return target.create_target_machine(cpu=arch, features="", opt=3)


def ptx(text, arch="sm_90", kernels=None):
    """PTX text for the NVPTX LLVM IR `text`, or a list of such modules linked into one
    (functions named in `kernels`, default those ending in `_kernel`, stay external)."""
    import llvmlite.binding as llvm
    tm = _target_machine(arch)
    texts = [text] if isinstance(text, str) else list(text)
    mod = llvm.parse_assembly(texts[0])
    for t in texts[1:]:
        mod.link_in(llvm.parse_assembly(t))
    lib = llvm.parse_bitcode(_libdevice())
    lib.triple = mod.triple
    lib.data_layout = mod.data_layout
    mod.link_in(lib)
    for fn in mod.functions:
        if fn.is_declaration:
            continue
        keep = fn.name in kernels if kernels is not None else fn.name.endswith("_kernel")
        if not keep:
            fn.linkage = "internal"
    mod.verify()
    pto = llvm.create_pipeline_tuning_options(speed_level=3)
    pb = llvm.create_pass_builder(tm, pto)
    pb.getModulePassManager().run(mod, pb)
    return tm.emit_assembly(mod)


def assemble(ptx_text, arch="sm_90"):
    """Run ptxas on `ptx_text` for `arch` (the first ptxas found that knows `arch`); its
    report (stderr, with -v). RuntimeError with ptxas' message when it rejects the PTX;
    UnsupportedArch when no ptxas found knows `arch`."""
    unknown = []
    for exe in list(ptxas_candidates()) or [find_ptxas()]:
        with tempfile.TemporaryDirectory() as d:
            src = os.path.join(d, "k.ptx")
            with open(src, "w") as f:
                f.write(ptx_text)
            r = subprocess.run([exe, f"-arch={arch}", "-v", "-o", os.path.join(d, "k.cubin"),
                                src], capture_output=True, text=True)
        if r.returncode != 0 and "is not defined for option 'gpu-name'" in r.stderr:
            unknown.append(f"{exe}: {r.stderr.strip()}")
            continue
        if r.returncode != 0:
            raise RuntimeError(f"ptxas -arch={arch} rejected the PTX: {r.stderr.strip()}")
        return r.stderr
    raise UnsupportedArch(f"no ptxas found assembles for {arch} (CUDA 13 dropped sm_70; "
                          "`pip install nvidia-cuda-nvcc-cu12` has a ptxas that knows it): "
                          + "; ".join(unknown))
