"""The printed IR of the whole corpus is real MLIR: mlir-opt-22 parses and verifies it."""

import shutil
import subprocess
import types

import pytest

import corpus
import lldiff
from lldiff.frontend import type_of_python_value

MLIR_OPT = shutil.which("mlir-opt-22") or shutil.which("mlir-opt")

pytestmark = pytest.mark.skipif(MLIR_OPT is None, reason="mlir-opt-22 not installed "
                                "(apt-get install mlir-22-tools; .ci/run installs it)")


def _corpus_modules():
    ns = dict(vars(corpus))
    jitted = {}
    for case in corpus.CASES:
        fn = case.fn
        copy = types.FunctionType(fn.__code__, ns, fn.__name__, fn.__defaults__, fn.__closure__)
        jitted[fn.__name__] = lldiff.jit(copy, opt=0)
    ns.update(jitted)
    texts = []
    for case in corpus.CASES:
        d = jitted[case.fn.__name__]
        seen = set()
        for args in case.inputs:
            sig = tuple(type_of_python_value(a) for a in args)
            if sig in seen:
                continue
            seen.add(sig)
            texts.append((f"{case.fn.__name__}{sig}", d.inspect("ir", *args)))
    return texts


def test_corpus_ir_parses_with_mlir_opt():
    texts = _corpus_modules()
    assert len(texts) >= 60
    # One mlir-opt process per module keeps failures attributable; ~45 ms each.
    failures = []
    for name, text in texts:
        r = subprocess.run([MLIR_OPT, "--allow-unregistered-dialect", "-"], input=text, capture_output=True, text=True)
        if r.returncode != 0:
            failures.append(f"{name}:\n{r.stderr[:2000]}\n{text[:3000]}")
    assert not failures, "\n\n".join(failures[:3])


def test_mlir_opt_rejects_broken_ir():
    """The check above can fail: a use of an undefined value is an mlir-opt error."""
    text = "func.func @f(%x: f64) -> f64 {\n  return %y : f64\n}\n"
    r = subprocess.run([MLIR_OPT, "-"], input=text, capture_output=True, text=True)
    assert r.returncode != 0


def test_reverse_mode_ir_parses_with_mlir_opt():
    """Reverse-mode IR, before (ad.push/ad.pop) and after tape materialization (!ad.tape
    handles), is MLIR too: the Bessel series and every corpus function with a loop."""
    ns = dict(vars(corpus))
    jitted = {c.fn.__name__: lldiff.jit(types.FunctionType(
        c.fn.__code__, ns, c.fn.__name__, c.fn.__defaults__, c.fn.__closure__), opt=0)
        for c in corpus.CASES}
    ns.update(jitted)
    failures = []
    count = 0
    for case in corpus.CASES:
        fn = case.fn
        args = case.inputs[0]
        if not any(isinstance(a, float) for a in args):
            continue
        text = jitted[fn.__name__].inspect("vjp", *args)
        if '"ad.push"' not in text:
            continue
        count += 1
        before, after = text.split("// after tape materialization")
        for part in (before, after.split("\n", 1)[1]):
            r = subprocess.run([MLIR_OPT, "--allow-unregistered-dialect", "-"], input=part,
                               capture_output=True, text=True)
            if r.returncode != 0:
                failures.append(f"{fn.__name__}:\n{r.stderr[:2000]}")
    assert count >= 15, count
    assert not failures, "\n\n".join(failures[:3])
