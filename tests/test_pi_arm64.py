"""Pi-class end to end: the board's software on an emulated Raspberry Pi gives x86's answers.

An aarch64 CPython 3.11 (Debian bookworm arm64, the base of Raspberry Pi OS 12) runs under
qemu-user as a Raspberry Pi 4 (Cortex-A72) and a Raspberry Pi 5 (Cortex-A76), with the C front
end cross-compiled for aarch64 (``-mcpu=cortex-a72``, the flags the board's own CPython would
use) and aarch64 wheels of numpy and ai-edge-litert at the versions x86 runs. Both machines run
the same script (scripts/arm64/probe.py) on the same recordings through the bundle's int8
TFLite model, using only the edge path; the arm64 side has no torch and no scipy installed,
so it also proves the edge path needs neither.

Checked against x86: context vectors within the front end's parity tolerance (and against
the numpy reference), int8 model outputs bit for bit on identical input vectors, clip scores
recomputed here in numpy, and the decisions.

scripts/setup-arm64.sh (run by scripts/setup.sh) builds the arm64 root, the wheels and the
board views once, cached under ~/.cache/edge-ad/arm64; the kernel is cross-built here for
each session from the tree's csrc/.
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

from edge import audio, features, reference, scoring
from edge.bundle import load_bundle
from ci_env import in_ci

ROOT = Path(__file__).resolve().parents[1]
ARM64 = Path(os.environ.get("EDGE_AD_ARM64_CACHE", "~/.cache/edge-ad/arm64")).expanduser()
PROBE = ROOT / "scripts" / "arm64" / "probe.py"
BUILD_KERNEL = ROOT / "scripts" / "arm64" / "build_kernel.py"
# Board name -> qemu CPU model: what the board's kernel reports in /proc/cpuinfo (the board
# views made by scripts/arm64/make-board.sh) and what instructions the emulated CPU has.
# Not qemu's default "max": with its SME enabled, qemu 7.2 gives int8 outputs of LiteRT 2.3
# (XNNPACK) that are wrong in 99.9% of the values, while "max,sme=off" matches x86 bit for
# bit; no Raspberry Pi has SME.
BOARDS = {"pi4": "cortex-a72", "pi5": "cortex-a76"}
PARITY = 1e-3        # the front end's parity tolerance (log10 units), SPEC / issue 2
# Clip scores across machines, relative: what the contract allows. With the kernel built
# -ffp-contract=off (csrc/build_frontend.py) the vectors, and so the scores, are identical
# (tested below); built with fused multiply-adds on aarch64 the vectors differed by up to
# 1.7e-6, which moved a few int8 input roundings: scores within 8.5e-5 on 30 clips.
SCORE_RTOL = 1e-3

pytestmark = pytest.mark.slow


def _require(ok: object, why: str) -> None:
    """Skip on a developer machine without the tools; fail in CI, where set-up installs them."""
    if not ok:
        if in_ci():
            pytest.fail(f"{why} (CI must run the Pi-class test)")
        pytest.skip(why)


@pytest.fixture(scope="module")
def arm64_python() -> Path:
    """The aarch64 interpreter of the cached root, after checking every part is in place."""
    _require(shutil.which("qemu-aarch64"), "qemu-aarch64 not installed (qemu-user)")
    _require(shutil.which("aarch64-linux-gnu-gcc"), "aarch64-linux-gnu-gcc not installed")
    parts = [ARM64 / "root" / ".edge-ad-stamp", ARM64 / "site" / ".edge-ad-stamp"]
    parts += [ARM64 / "boards" / b / ".board-stamp" for b in BOARDS]
    missing = [str(p.parent) for p in parts if not p.is_file()]
    _require(not missing, f"arm64 environment missing ({', '.join(missing)}): run scripts/setup-arm64.sh")
    return ARM64 / "root" / "usr" / "bin" / "python3.11"


@pytest.fixture(scope="module")
def arm64_edge(arm64_python, tmp_path_factory) -> Path:
    """A directory holding ``edge/`` with the kernel cross-built from this tree's csrc/."""
    out = tmp_path_factory.mktemp("arm64-edge")
    done = subprocess.run([sys.executable, str(BUILD_KERNEL), "--root", str(ARM64 / "root"),
                           "--out", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    so = Path(done.stdout.strip().splitlines()[-1])
    assert so.is_file() and so.parent == out / "edge"
    return out


def run_arm64(board: str, python: Path, edge_dir: Path, args: list[str]) -> subprocess.CompletedProcess:
    """Run the aarch64 Python as ``board`` with the cross-built edge package first on its path."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "LANG": "C.UTF-8",
        "QEMU_LD_PREFIX": str(ARM64 / "boards" / board),
        "QEMU_CPU": BOARDS[board],
        # the cross-built edge first, then the aarch64 wheels; never the x86 tree or venv
        "PYTHONPATH": os.pathsep.join([str(edge_dir), str(ARM64 / "site")]),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONNOUSERSITE": "1",
        "PYTHONSAFEPATH": "1",   # not the working directory either (``-m`` would add it)
    }
    return subprocess.run(["qemu-aarch64", str(python), *args], env=env, capture_output=True,
                          text=True, timeout=300, cwd=edge_dir)


@pytest.fixture(scope="module")
def bundle_dir(bundle) -> Path:
    """The ``bundle`` fixture may be a path or an ``edge.bundle.Bundle``."""
    return Path(getattr(bundle, "path", bundle))


@pytest.fixture(scope="module")
def recordings(bundle_dir, trained_run) -> list[Path]:
    """A normal and an anomalous recording from the run's held-out test split: the normal
    clip x86 scores lowest and the anomalous one it scores highest, so the decisions
    compared are, if the model separates at all, one of each."""
    from train.runs import load_run

    b = load_bundle(bundle_dir)
    backend, _ = b.load_backend("tflite", "int8")
    run = trained_run if hasattr(trained_run, "clips_in") else load_run(trained_run)
    test = run.clips_in("test")

    def score(path: Path) -> float:
        v = features.clip_features(audio.load(path, spec=b.spec), spec=b.spec)
        return scoring.clip_score(v, backend.run(v))

    picked = []
    for label, pick in (("normal", min), ("anomaly", max)):
        clips = [Path(c.path) for c in test if c.label == label][:12]
        assert clips, f"the run's test split has no {label} clip"
        picked.append(pick(clips, key=score))
    return picked


@pytest.fixture(scope="module")
def x86(bundle_dir, recordings, tmp_path_factory) -> dict[str, np.ndarray]:
    out = tmp_path_factory.mktemp("x86") / "x86.npz"
    done = subprocess.run([sys.executable, str(PROBE), str(bundle_dir), "--wav", *map(str, recordings),
                           "--out", str(out)], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    return dict(np.load(out, allow_pickle=False))


@pytest.fixture(scope="module", params=sorted(BOARDS))
def board(request, arm64_python, arm64_edge, bundle_dir, recordings, x86, tmp_path_factory):
    """The probe's results on one emulated board, fed x86's vectors too (``ref_recon_k``)."""
    name = request.param
    tmp = tmp_path_factory.mktemp(name)
    ref = tmp / "x86.npz"
    np.savez(ref, **x86)
    out = tmp / f"{name}.npz"
    done = run_arm64(name, arm64_python, arm64_edge,
                     [str(PROBE), str(bundle_dir), "--wav", *map(str, recordings),
                      "--out", str(out), "--vectors", str(ref)])
    assert done.returncode == 0, f"{name}: probe failed under qemu:\n{done.stderr[-3000:]}"
    return name, dict(np.load(out, allow_pickle=False))


def _meta(results: dict[str, np.ndarray]) -> dict:
    return json.loads(str(results["meta"]))


def _output_quantization(model: Path) -> tuple[float, int]:
    """The int8 output's scale and zero point, read from the model file on x86: of the int8
    tensor the final DEQUANTIZE reads (the bundle's float-I/O model), or of an int8 output."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(model))
    tensors = {d["index"]: d for d in it.get_tensor_details()}
    last = it._get_ops_details()[-1]
    index = last["inputs"][0] if last["op_name"] == "DEQUANTIZE" else it.get_output_details()[0]["index"]
    detail = tensors[index]
    assert np.dtype(detail["dtype"]) == np.int8, "the bundle's int8 model has no int8 output tensor"
    scale, zero = detail["quantization"]
    return float(scale), int(zero)


def test_arm64_board_runs_the_cross_built_kernel_and_same_runtime_versions(board, x86, arm64_edge):
    name, arm = board
    meta, x86_meta = _meta(arm), _meta(x86)
    assert meta["machine"] == "aarch64" and x86_meta["machine"] == "x86_64"
    # the aarch64 kernel from this session's cross build, not an x86 build
    assert meta["kernel"] == str(arm64_edge / "edge" / "_frontend.cpython-311-aarch64-linux-gnu.so")
    assert meta["precision"] == x86_meta["precision"] == "int8"
    for key in ("numpy", "ai_edge_litert", "backend", "cutoff"):
        assert meta[key] == x86_meta[key], f"{name}: {key} {meta[key]} on arm64, {x86_meta[key]} on x86"


@pytest.fixture(scope="module")
def reference_vectors(bundle_dir, recordings) -> list[np.ndarray]:
    """The slow numpy reference of the same spec: independent of either machine's kernel."""
    spec = load_bundle(bundle_dir).spec
    return [reference.clip_features(audio.load(wav, spec=spec), spec) for wav in recordings]


def test_arm64_context_vectors_match_x86_and_the_numpy_reference(board, x86, recordings,
                                                                  reference_vectors):
    name, arm = board
    for k, wav in enumerate(recordings):
        a, b, ref = arm[f"features_{k}"], x86[f"features_{k}"], reference_vectors[k]
        assert a.shape == b.shape == ref.shape and a.dtype == np.float32
        assert np.abs(a - b).max() <= PARITY, f"{name} {wav.name}: vectors differ from x86"
        assert np.abs(a - ref).max() <= PARITY, f"{name} {wav.name}: vectors differ from the reference"


def test_arm64_context_vectors_are_bit_identical_to_x86(board, x86, recordings):
    """The kernel is built without fused multiply-adds and x86's clones use none either, so
    a board computes the very bits training did: the int8 model then sees identical input."""
    name, arm = board
    for k, wav in enumerate(recordings):
        a, b = arm[f"features_{k}"], x86[f"features_{k}"]
        differ = int(np.count_nonzero(a != b))
        assert differ == 0, (f"{name} {wav.name}: {differ} of {a.size} values differ from x86 "
                             f"(largest {np.abs(a - b).max():.3g})")


def _int8(recon: np.ndarray, scale: float, zero: int) -> np.ndarray:
    """Back from dequantised floats to the int8 values the model produced. The round trip
    must be exact, so these are the model's own integers, not a rounding of something else."""
    q = np.round(recon / np.float32(scale)) + zero
    assert q.min() >= -128 and q.max() <= 127
    assert np.array_equal(((q - zero) * np.float32(scale)).astype(np.float32), recon)
    return q.astype(np.int8)


def test_arm64_int8_outputs_are_bit_identical_to_x86_on_the_same_vectors(board, x86, bundle_dir, recordings):
    """Both directions: the board on x86's vectors, and x86 (here, in this process) on the
    board's vectors."""
    name, arm = board
    b = load_bundle(bundle_dir)
    model = b.model_path("tflite", "int8")
    scale, zero = _output_quantization(model)
    backend, _ = b.load_backend("tflite", "int8")
    for k in range(len(recordings)):
        pairs = {"x86 vectors": (x86[f"recon_{k}"], arm[f"ref_recon_{k}"]),
                 "arm64 vectors": (backend.run(arm[f"features_{k}"]), arm[f"recon_{k}"])}
        for inputs, (on_x86, on_arm) in pairs.items():
            q_x86, q_arm = _int8(on_x86, scale, zero), _int8(on_arm, scale, zero)
            differ = int(np.count_nonzero(q_x86 != q_arm))
            assert differ == 0, f"{name}, {inputs}: {differ} of {q_x86.size} int8 outputs differ"


def test_arm64_scores_and_decisions_equal_x86(board, x86, bundle_dir, recordings):
    name, arm = board
    b = load_bundle(bundle_dir)
    threshold = b.threshold_for(b.model_path("tflite", "int8"))
    for k, wav in enumerate(recordings):
        v, recon = arm[f"features_{k}"].astype(np.float64), arm[f"recon_{k}"].astype(np.float64)
        # A(X) = sum_i ||f(x_i) - x_i||^2 / (n * 640), recomputed here from the board's arrays
        expected = float(((recon - v) ** 2).sum() / v.size)
        s_arm, s_x86 = float(arm[f"score_{k}"]), float(x86[f"score_{k}"])
        assert s_arm == pytest.approx(expected, rel=1e-9)
        assert s_arm == pytest.approx(s_x86, rel=SCORE_RTOL), f"{name} {wav.name}: score"
        assert bool(arm[f"anomaly_{k}"]) == bool(x86[f"anomaly_{k}"]) == threshold.decide(s_x86), \
            f"{name} {wav.name}: score {s_arm} on arm64, {s_x86} on x86, cutoff {threshold.cutoff}"


def test_edge_ad_score_on_a_pi4_gives_the_x86_decisions(arm64_python, arm64_edge, bundle_dir,
                                                         recordings, x86):
    """The product command, ``edge-ad score BUNDLE FILE... --json``, on both machines, with
    LiteRT (``--backend tflite``; the C backend, the default, is checked below)."""
    args = ["-m", "edge", "score", str(bundle_dir), *map(str, recordings), "--json",
            "--backend", "tflite"]
    on_arm = run_arm64("pi4", arm64_python, arm64_edge, args)
    assert on_arm.returncode == 0, on_arm.stderr[-3000:]
    on_x86 = subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert on_x86.returncode == 0, on_x86.stderr[-3000:]
    arm, here = json.loads(on_arm.stdout), json.loads(on_x86.stdout)
    assert arm["model"] == here["model"] == "model_int8.tflite"
    assert arm["cutoff"] == here["cutoff"] and not arm["errors"] and not here["errors"]
    assert [c["path"] for c in arm["clips"]] == [c["path"] for c in here["clips"]] == list(map(str, recordings))
    for k, (a, h) in enumerate(zip(arm["clips"], here["clips"])):
        # the command and the probe are the same computation on each machine
        assert h["score"] == float(x86[f"score_{k}"])
        assert a["score"] == pytest.approx(h["score"], rel=SCORE_RTOL)
        assert a["anomaly"] == h["anomaly"], f"{a['path']}: {a['score']} on arm64, {h['score']} on x86"


def test_edge_ad_score_with_the_c_backend_on_a_pi4_equals_x86_bit_for_bit(arm64_python, arm64_edge,
                                                                          bundle_dir, recordings):
    """The default backend (the bundle's int8 network on the C kernel, NEON on the Pi):
    the same scores as x86's AVX kernels, bit for bit, and so the same decisions."""
    args = ["-m", "edge", "score", str(bundle_dir), *map(str, recordings), "--json"]
    on_arm = run_arm64("pi4", arm64_python, arm64_edge, args)
    assert on_arm.returncode == 0, on_arm.stderr[-3000:]
    on_x86 = subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert on_x86.returncode == 0, on_x86.stderr[-3000:]
    arm, here = json.loads(on_arm.stdout), json.loads(on_x86.stdout)
    assert arm["model"] == here["model"] == "model_int8.adq8"
    assert arm["backend"] == here["backend"] == "edge-ad C int8"
    assert [(c["score"], c["anomaly"]) for c in arm["clips"]] == \
        [(c["score"], c["anomaly"]) for c in here["clips"]]
