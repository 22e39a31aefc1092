"""Packaging: ``pip wheel`` of a clean copy of the sources compiles the C kernel through
setup.py's ``cffi_modules``, and the module in the wheel computes the reference features."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_pip_wheel_of_a_clean_copy_builds_a_working_kernel(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md"):
        if (ROOT / name).exists():
            shutil.copy(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.so", "*.o", "*.pyc", "build-*", "_frontend.c")
    for package in ("csrc", "edge", "train"):
        shutil.copytree(ROOT / package, src / package, ignore=ignore)
    assert not list((src / "edge").glob("_frontend*"))

    # no build isolation: the test runs offline with setuptools and cffi already installed
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                           "--no-build-isolation", "-q", "-w", str(tmp_path / "wheel"), str(src)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    wheel, = (tmp_path / "wheel").glob("edge_ad-*.whl")
    with zipfile.ZipFile(wheel) as z:
        kernels = [n for n in z.namelist() if n.startswith("edge/_frontend") and n.endswith(".so")]
        assert kernels, z.namelist()
        z.extractall(tmp_path / "site")

    check = (
        "import numpy as np, edge._frontend as k, edge.features as f, edge.reference as r\n"
        "assert k.__file__.startswith(%r), k.__file__\n"
        "x = (0.3 * np.sin(np.arange(20000) * 0.05)).astype(np.float32)\n"
        "d = np.abs(f.clip_features(x) - r.clip_features(x)).max()\n"
        "assert d <= 1e-3, d\n"
        "print('ok', d)\n" % str(tmp_path / "site"))
    env = dict(os.environ, PYTHONPATH=str(tmp_path / "site"))
    run = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, env=env,
                         cwd=tmp_path, timeout=120)
    assert run.returncode == 0 and run.stdout.startswith("ok"), run.stdout + run.stderr
