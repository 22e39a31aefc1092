"""int8 bundles compute the same thing on every x86 CPU: natively and under
``qemu-x86_64 -cpu Haswell`` (an AVX2 CPU without AVX-512 and without VNNI, whatever the
host is), the int8 ONNX and TFLite models of a bundle score clips as float does.

Why it needs an emulated CPU: onnxruntime's int8 GEMM on AVX2 without VNNI adds pairs of
u8 x s8 products in saturating 16-bit lanes (``vpmaddubsw``); with full 8-bit weights that
overflows, so the int8 scores depended on the CPU the bundle was checked on. The control
test proves the emulation reaches that kernel: a model built to saturate it is computed
wrongly under Haswell with S8S8 quantisation and exactly with the exporter's U8U8.
"""
from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ci_env import in_ci

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def load_script(name: str):
    """A module of scripts/ (the same checks a developer runs by hand on any RUN and BUNDLE)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


int8_cpus = load_script("int8_cpus")
clip_scores = int8_cpus.clip_scores


def qemu_x86_64() -> str:
    exe = shutil.which("qemu-x86_64")
    if exe is None:
        if in_ci():
            pytest.fail("qemu-x86_64 missing: scripts/setup.sh installs qemu-user")
        pytest.skip("qemu-x86_64 not installed (scripts/setup.sh installs qemu-user)")
    return exe


def run_models(folder: Path, *, emulate: bool) -> dict[str, np.ndarray]:
    if emulate:
        qemu_x86_64()
    return int8_cpus.run_models(folder, emulate=emulate)


def cpuid_flags_under_haswell() -> set[str]:
    """CPU features as a program sees them through cpuid under the emulation (onnxruntime
    and XNNPACK dispatch on cpuid, not on /proc/cpuinfo, which qemu-user passes through)."""
    code = ("import numpy as np, json; from numpy._core._multiarray_umath import "
            "__cpu_features__ as f; print(json.dumps([k for k, v in f.items() if v]))")
    proc = subprocess.run([qemu_x86_64(), "-cpu", "Haswell", sys.executable, "-c", code],
                          capture_output=True, text=True, timeout=300, check=True)
    return set(json.loads(proc.stdout))


def test_the_emulated_cpu_has_avx2_but_no_avx512_and_no_vnni():
    flags = cpuid_flags_under_haswell()
    assert "AVX2" in flags and "FMA3" in flags
    assert not any(f.startswith("AVX512") for f in flags)
    assert "AVX512_VNNI" not in flags and "AVXVNNI" not in flags


def saturating_layer(dim: int = 64):
    """One dense layer whose int8 products saturate a 16-bit pair sum: every weight equal
    (per-channel symmetric quantisation puts each at the top of the int8 range) and inputs
    at the top of the calibrated range (255 once shifted to u8)."""
    from train.export.fold import Dense

    w = np.full((dim, dim), 0.01, np.float32)
    return [Dense(weight=w, bias=np.zeros(dim, np.float32), relu=False)]


def test_control_s8_weights_saturate_under_haswell_and_the_exporters_u8u8_do_not(tmp_path,
                                                                                monkeypatch):
    from train.export import onnx as onnx_export

    layers = saturating_layer()
    rng = np.random.default_rng(0)
    calibration = rng.uniform(-1, 1, (256, 64)).astype(np.float32)
    calibration[0] = 1.0
    onnx_export.export_float(layers, tmp_path / "float.onnx")
    onnx_export.quantize_int8(tmp_path / "float.onnx", tmp_path / "ours.onnx", calibration)
    monkeypatch.setattr(onnx_export, "QUANTIZATION", {
        "activation_type": "QInt8", "weight_type": "QInt8", "reduce_range": False,
        "weight_symmetric": True})                  # onnxruntime's recommended S8S8
    onnx_export.quantize_int8(tmp_path / "float.onnx", tmp_path / "s8s8.onnx", calibration)
    x = np.ones((4, 64), np.float32)            # every input at the calibrated maximum
    np.save(tmp_path / "x.npy", x)
    exact = x.astype(np.float64) @ layers[0].weight.T.astype(np.float64)   # 0.64 everywhere
    y = run_models(tmp_path, emulate=True)
    # The output's own quantisation step bounds an exact kernel's error.
    step = 2 * 0.64 / 255
    assert np.abs(y["ours.onnx"] - exact).max() <= 2 * step
    assert np.abs(y["s8s8.onnx"] - exact).max() > 0.2      # pairs clipped at 32767: wrong


@pytest.fixture(scope="module")
def held_out(trained_run):
    from train.runs import load_run

    run = trained_run if hasattr(trained_run, "clips") else load_run(trained_run)
    clips = [c for c in run.clips if c.split != "train"]
    return [run.vectors(c) for c in clips], np.array([c.is_anomaly for c in clips], bool)


@pytest.fixture(scope="module")
def outputs(bundle, held_out, tmp_path_factory):
    """Every model of the session bundle run on the held-out clips, natively and under
    the emulated Haswell."""
    folder = tmp_path_factory.mktemp("int8_cpus")
    for name in bundle.models:
        shutil.copy(bundle.path / name, folder / name)
    np.save(folder / "x.npy", np.concatenate(held_out[0]))
    return {"native": run_models(folder, emulate=False),
            "haswell": run_models(folder, emulate=True)}


@pytest.mark.parametrize("cpu", ["native", "haswell"])
@pytest.mark.parametrize("fmt", ["onnx", "tflite"])
def test_int8_clip_scores_follow_float_and_decide_alike_on_every_cpu(outputs, held_out, bundle,
                                                                     cpu, fmt):
    vectors, _ = held_out
    f = clip_scores(vectors, outputs[cpu][f"model_float.{fmt}"])
    q = clip_scores(vectors, outputs[cpu][f"model_int8.{fmt}"])
    assert np.corrcoef(f, q)[0, 1] >= 0.9999
    cut_f = bundle.thresholds[f"model_float.{fmt}"].cutoff
    cut_q = bundle.thresholds[f"model_int8.{fmt}"].cutoff
    assert np.mean((f > cut_f) == (q > cut_q)) >= 0.995


@pytest.mark.parametrize("fmt", ["onnx", "tflite"])
def test_int8_outputs_are_bit_identical_with_and_without_vnni(outputs, fmt):
    """Integer kernels that never saturate compute the same integers on any x86 CPU."""
    native, haswell = outputs["native"][f"model_int8.{fmt}"], outputs["haswell"][f"model_int8.{fmt}"]
    np.testing.assert_array_equal(native, haswell)
