"""The bundle's C int8 network and ``--backend c``: export writes ``model_int8.adq8`` from
the int8 TFLite model's tensors (listed and hashed in the manifest), and ``edge-ad run``,
``score`` and ``calibrate`` run it with LiteRT, tflite-runtime, onnxruntime, torch and
scipy all unimportable, making the same decisions as LiteRT int8.

Uses the session fixtures ``trained_run`` and ``bundle``.
"""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge.bundle import C_INT8_FILE, load_bundle
from edge.errors import EXIT_BUNDLE_INVALID, BundleError
from runtime_support import (bundle_dir, copy_bundle, edge_ad, edge_env, lines, load_trained_run,
                             make_anomalous, normal_audio, write_wav)

BLOCKED = ("ai_edge_litert", "tflite_runtime", "onnxruntime", "torch", "scipy", "tensorflow")
BLOCKER = f'''"""Test hook: these modules cannot be imported in this interpreter."""
import sys

BLOCKED = {BLOCKED!r}


class _Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{{name}} is blocked by the test (a board without it)")
        return None


sys.meta_path.insert(0, _Blocker())
'''


@pytest.fixture(scope="module")
def recordings(trained_run, tmp_path_factory) -> dict[str, Path]:
    run = load_trained_run(trained_run)
    tmp = tmp_path_factory.mktemp("c-rec")
    normal = normal_audio(run, 20.0)
    anomalous = make_anomalous(normal_audio(run, 10.0, skip=3))
    return {"mixed": write_wav(tmp / "mixed.wav", np.concatenate([normal, anomalous, normal])),
            "normal": write_wav(tmp / "normal.wav", normal_audio(run, 70.0, quiet=False))}


@pytest.fixture(scope="module")
def bare_env(tmp_path_factory) -> dict[str, str]:
    """An environment whose interpreters cannot import any ML runtime, torch or scipy."""
    hook = tmp_path_factory.mktemp("bare")
    (hook / "sitecustomize.py").write_text(BLOCKER)
    env = edge_env()
    env["PYTHONPATH"] = f"{hook}:{env['PYTHONPATH']}"
    return env


def test_export_writes_the_c_network_from_the_int8_tflite_model_into_the_manifest(bundle):
    from train.export.dense import from_tflite

    root = bundle_dir(bundle)
    data = (root / C_INT8_FILE).read_bytes()
    entry = bundle.manifest["files"][C_INT8_FILE]
    assert entry == {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    assert data == from_tflite((root / "model_int8.tflite").read_bytes()).to_bytes()
    assert bundle.has_c_model and bundle.default_backend("int8") == "c"
    assert bundle.default_backend("float") == "tflite"


def test_a_changed_c_network_fails_bundle_verification(bundle, tmp_path):
    target = copy_bundle(bundle, tmp_path / "b")
    data = bytearray((target / C_INT8_FILE).read_bytes())
    data[200] ^= 1
    (target / C_INT8_FILE).write_bytes(bytes(data))
    with pytest.raises(BundleError, match=f"{C_INT8_FILE}: sha256"):
        load_bundle(target)


def test_the_blocker_really_blocks(bare_env):
    code = ("import importlib\n"
            f"for m in {BLOCKED!r}:\n"
            "    try:\n"
            "        importlib.import_module(m)\n"
            "    except ImportError:\n"
            "        continue\n"
            "    raise SystemExit(f'{m} imported')\n")
    r = subprocess.run([sys.executable, "-c", code], env=bare_env, capture_output=True)
    assert r.returncode == 0, r.stderr.decode()


def _run(model: Path, wav: Path, *extra: str, env=None) -> subprocess.CompletedProcess:
    return edge_ad("run", "--device", str(wav), "--fast", "--model", str(model), "--window", "5s",
                   "--alarm", "2/3", *extra, env=env)


def test_run_with_backend_c_and_no_ml_runtime_makes_litert_int8s_decisions(
        bundle, recordings, bare_env):
    model = bundle_dir(bundle)
    c = _run(model, recordings["mixed"], "--backend", "c", env=bare_env)
    assert c.returncode == 0, c.stderr.decode()
    assert "edge-ad C int8" in c.stderr.decode()
    default = _run(model, recordings["mixed"], env=bare_env)    # c is the default for int8
    assert default.returncode == 0

    def timeless(out: bytes) -> list[dict]:
        return [{k: v for k, v in d.items() if k not in ("time", "monotonic")} for d in lines(out)]
    assert timeless(default.stdout) == timeless(c.stdout)
    litert = _run(model, recordings["mixed"], "--backend", "tflite")
    assert litert.returncode == 0, litert.stderr.decode()
    dc, dl = lines(c.stdout), lines(litert.stdout)
    assert len(dc) == len(dl) == 45
    for a, b in zip(dc, dl):
        assert (a["stream_seconds"], a["anomaly"], a["alarm"], a["cutoff"]) == \
            (b["stream_seconds"], b["anomaly"], b["alarm"], b["cutoff"])
        # The C network equals LiteRT's reference kernels bit for bit (test_dense_c.py);
        # LiteRT's default XNNPACK kernels round about 1 output in 40,000 one step the
        # other way (27 of 1559 x 640 on this recording), which moves a window's score by
        # up to ~2e-5 relative.
        assert a["score"] == pytest.approx(b["score"], rel=1e-4)
    assert any(d["alarm"] for d in dc) and not all(d["alarm"] for d in dc)


def test_score_with_backend_c_and_no_ml_runtime_equals_litert_int8(bundle, trained_run, bare_env):
    run = load_trained_run(trained_run)
    clips = [str(c.path) for c in run.clips[:3] + [c for c in run.clips if c.label == "anomaly"][:2]]
    c = edge_ad("score", str(bundle_dir(bundle)), *clips, "--backend", "c", "--json", env=bare_env)
    assert c.returncode == 0, c.stderr.decode()
    litert = edge_ad("score", str(bundle_dir(bundle)), *clips, "--backend", "tflite", "--json")
    dc, dl = json.loads(c.stdout), json.loads(litert.stdout)
    assert dc["backend"] == "edge-ad C int8" and dc["model"] == C_INT8_FILE
    assert dc["cutoff"] == dl["cutoff"]
    for a, b in zip(dc["clips"], dl["clips"]):
        assert a["score"] == pytest.approx(b["score"], rel=1e-4)   # as for run, above
        assert a["anomaly"] == b["anomaly"]


def test_calibrate_with_backend_c_and_no_ml_runtime_refits_the_int8_tflite_cutoff(
        bundle, recordings, bare_env, tmp_path):
    args = ("--device", str(recordings["normal"]), "--fast", "--minutes", "1.1", "--dry-run",
            "--json", "--precision", "int8")
    c = edge_ad("calibrate", "--model", str(bundle_dir(bundle)), "--backend", "c", *args,
                env=bare_env)
    assert c.returncode == 0, c.stderr.decode()
    litert = edge_ad("calibrate", "--model", str(bundle_dir(bundle)), "--backend", "tflite", *args)
    assert litert.returncode == 0, litert.stderr.decode()
    mc, ml = json.loads(c.stdout)["models"], json.loads(litert.stdout)["models"]
    assert list(mc) == list(ml) == ["model_int8.tflite"]
    assert mc["model_int8.tflite"]["cutoff"] == pytest.approx(ml["model_int8.tflite"]["cutoff"],
                                                              rel=1e-4)


def test_backend_c_refuses_float_and_a_bundle_without_the_c_network(bundle, recordings, tmp_path):
    model = bundle_dir(bundle)
    r = _run(model, recordings["mixed"], "--backend", "c", "--precision", "float")
    assert r.returncode == EXIT_BUNDLE_INVALID
    assert "--backend c runs the int8 network only" in r.stderr.decode()
    # an older bundle: no C network; c is refused by name, the default falls back to tflite
    from edge.bundle import write_bundle

    old = tmp_path / "old"
    write_bundle(old, models={n: (model / n).read_bytes() for n in bundle.models},
                 spec=bundle.spec, thresholds=bundle.thresholds)
    r = _run(old, recordings["mixed"], "--backend", "c")
    assert r.returncode == EXIT_BUNDLE_INVALID and f"has no {C_INT8_FILE}" in r.stderr.decode()
    r = _run(old, recordings["mixed"], "--max-seconds", "8")
    assert r.returncode == 0 and "ai-edge-litert" in r.stderr.decode()
