"""Packaging: every package directory is listed in pyproject.toml, and a built wheel installs
and imports lldiff.passes and lldiff.runtime in a fresh venv (a missing nested package still
imports in an editable install but is dropped from the wheel)."""

import os
import pathlib
import subprocess
import sys
import zipfile

import pytest

try:
    import tomllib
except ImportError:  # Python 3.10
    tomllib = None

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _config():
    if tomllib is None:
        pytest.skip("tomllib needs Python 3.11")
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def _expected_packages():
    cfg = _config()
    dirs = {"lldiff": ROOT / "lldiff"}
    dirs.update({pkg: ROOT / path for pkg, path in cfg["package-dir"].items()})
    found = set()
    for pkg, base in dirs.items():
        for init in base.rglob("__init__.py"):
            rel = init.parent.relative_to(base).parts
            if "__pycache__" in rel:
                continue
            name = ".".join((pkg,) + rel)
            # lldiff/passes would be shadowed by the package-dir mapping: not expected
            found.add(name)
    return found


def test_every_package_is_listed():
    listed = set(_config()["packages"])
    expected = _expected_packages()
    assert expected - listed == set(), f"packages missing from pyproject.toml: {expected - listed}"
    assert listed - expected == set(), f"listed packages without __init__.py: {listed - expected}"
    assert {"lldiff.passes", "lldiff.runtime", "lldiff.ir", "lldiff.frontend",
            "lldiff.codegen"} <= listed


@pytest.mark.slow
def test_wheel_installs_and_imports(tmp_path):
    dist = tmp_path / "dist"
    r = subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation",
                        "--outdir", str(dist), str(ROOT)], capture_output=True, text=True)
    if r.returncode != 0 and "No module named build" in r.stderr:
        pytest.skip("the 'build' package is not installed (it is in the test extra)")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    (wheel,) = dist.glob("lldiff-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for pkg in _expected_packages():
        assert pkg.replace(".", "/") + "/__init__.py" in names, f"{pkg} missing from the wheel"
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
                   check=True)
    code = ("import lldiff, lldiff.passes, lldiff.runtime, lldiff.ir, lldiff.frontend, sys;"
            "print(lldiff.__file__);"
            "assert 'llvmlite.binding' not in sys.modules")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    r = subprocess.run([str(py), "-c", code], capture_output=True, text=True, cwd=tmp_path,
                       env=env)
    assert r.returncode == 0, r.stderr
    assert str(venv) in r.stdout, f"imported lldiff from outside the venv: {r.stdout}"
