"""32-bit board end to end: ``edge-ad run`` on an emulated Cortex-A7 (armhf, the CPU class of
a Pi 2, and the 32-bit userland a Pi Zero 2 W or Pi 3 runs) makes x86's decisions.

A Debian bookworm armhf CPython 3.11 with only Debian's numpy, cffi and soundfile (no model
runtime exists for it: no ai-edge-litert, tflite-runtime or onnxruntime wheel is published
for linux_armv7l and Python 3.11; no torch, no scipy) runs under qemu-arm with the C kernel
cross-built from this tree (``scripts/arm64/build_kernel.py --cc arm-linux-gnueabihf-gcc``,
the board's own sysconfig flags plus ``-mcpu=cortex-a7``). It runs the bundle's int8
network through ``--backend c`` (the default), on a recording with an anomalous stretch;
x86 runs the same recording with LiteRT int8 and with the C backend.

scripts/setup-armhf.sh (run by scripts/setup.sh) builds the root once, cached under
~/.cache/edge-ad/armhf.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from runtime_support import (bundle_dir, edge_ad, lines, load_trained_run, make_anomalous,
                             normal_audio, write_wav)
from ci_env import in_ci

ROOT = Path(__file__).resolve().parents[1]
ARMHF = Path(os.environ.get("EDGE_AD_ARMHF_CACHE", "~/.cache/edge-ad/armhf")).expanduser()
BUILD_KERNEL = ROOT / "scripts" / "arm64" / "build_kernel.py"

pytestmark = pytest.mark.slow


def _require(ok: object, why: str) -> None:
    """Skip on a developer machine without the tools; fail in CI, where set-up installs them."""
    if not ok:
        if in_ci():
            pytest.fail(f"{why} (CI must run the armhf test)")
        pytest.skip(why)


@pytest.fixture(scope="module")
def armhf_python() -> Path:
    _require(shutil.which("qemu-arm"), "qemu-arm not installed (qemu-user)")
    _require(shutil.which("arm-linux-gnueabihf-gcc"), "arm-linux-gnueabihf-gcc not installed")
    _require((ARMHF / ".smoke-stamp").is_file(),
             f"armhf root missing in {ARMHF}: run scripts/setup-armhf.sh")
    return ARMHF / "root" / "usr" / "bin" / "python3.11"


@pytest.fixture(scope="module")
def armhf_edge(armhf_python, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("armhf-edge")
    done = subprocess.run([sys.executable, str(BUILD_KERNEL), "--root", str(ARMHF / "root"),
                           "--out", str(out), "--cc", "arm-linux-gnueabihf-gcc",
                           "--cpu", "cortex-a7"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    so = Path(done.stdout.strip().splitlines()[-1])
    assert so.name.endswith("-arm-linux-gnueabihf.so")
    assert int.from_bytes(so.read_bytes()[18:20], "little") == 40   # ELF e_machine: ARM
    return out


def run_armhf(python: Path, edge_dir: Path, args: list[str]) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"),
           "LANG": "C.UTF-8", "QEMU_LD_PREFIX": str(ARMHF / "root"), "QEMU_CPU": "cortex-a7",
           # the cross-built edge only: never the x86 tree or venv
           "PYTHONPATH": str(edge_dir), "PYTHONDONTWRITEBYTECODE": "1", "PYTHONNOUSERSITE": "1",
           "PYTHONSAFEPATH": "1"}
    return subprocess.run(["qemu-arm", str(python), *args], env=env, capture_output=True,
                          text=True, timeout=600, cwd=edge_dir)


@pytest.fixture(scope="module")
def recording(trained_run, tmp_path_factory) -> Path:
    run = load_trained_run(trained_run)
    normal = normal_audio(run, 15.0)
    anomalous = make_anomalous(normal_audio(run, 10.0, skip=3))
    return write_wav(tmp_path_factory.mktemp("armhf-rec") / "mixed.wav",
                     np.concatenate([normal, anomalous, normal]))


def test_armhf_python_has_no_model_runtime_and_the_c_kernel_runs_neon(armhf_python, armhf_edge):
    code = ("import importlib.util, json, platform\n"
            "from edge.backends.c import available_kernels\n"
            "mods = ['ai_edge_litert', 'tflite_runtime', 'onnxruntime', 'torch', 'scipy']\n"
            "print(json.dumps({'machine': platform.machine(), 'kernels': available_kernels(),\n"
            "  'present': [m for m in mods if importlib.util.find_spec(m)]}))\n")
    r = run_armhf(armhf_python, armhf_edge, ["-c", code])
    assert r.returncode == 0, r.stderr[-3000:]
    info = json.loads(r.stdout.strip().splitlines()[-1])
    assert info["machine"] == "armv7l" and info["present"] == []
    assert info["kernels"] == ["scalar", "neon"]


def test_edge_run_on_armhf_makes_x86s_decisions(armhf_python, armhf_edge, bundle, recording,
                                               tmp_path):
    model = bundle_dir(bundle)
    args = ["--device", str(recording), "--fast", "--model", str(model), "--window", "5s",
            "--alarm", "2/3"]
    out = tmp_path / "armhf.jsonl"
    r = run_armhf(armhf_python, armhf_edge, ["-m", "edge", "run", *args, "--json-out", str(out)])
    assert r.returncode == 0, r.stderr[-3000:]
    assert "edge-ad C int8" in r.stderr
    arm = lines(out.read_text())
    c = edge_ad("run", *args, "--backend", "c")
    litert = edge_ad("run", *args, "--backend", "tflite")
    assert c.returncode == 0 and litert.returncode == 0, (c.stderr, litert.stderr)
    x86_c, x86_litert = lines(c.stdout), lines(litert.stdout)
    assert len(arm) == len(x86_c) == len(x86_litert) == 35
    key = ("stream_seconds", "anomaly", "alarm", "cutoff")
    assert [[d[k] for k in key] for d in arm] == [[d[k] for k in key] for d in x86_litert]
    # the C path is bit-exact across machines: front end without FMA contraction, integer
    # network, errors summed in a fixed order
    assert [d["score"] for d in arm] == [d["score"] for d in x86_c]
    assert any(d["alarm"] for d in arm) and not all(d["alarm"] for d in arm)
