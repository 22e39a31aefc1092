"""The bundle on its own: atomic writing and every refusal of the verifying loader.

Model files here are opaque bytes (the loader checks hashes, not models); the bundles that
``edge-ad export`` writes from a real run are tested in test_export_bundle.py.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from edge import bundle as bundle_mod
from edge.bundle import load_bundle, write_bundle
from edge.errors import BundleError
from edge.spec import DEFAULT_SPEC, FeatureSpec
from edge.threshold import fit_gamma

MODELS = {"model_int8.tflite": b"\x1c\x00\x00\x00TFL3" + bytes(range(256)) * 4,
          "model_float.onnx": b"\x08\x08\x12\x07pytorch" + bytes(range(255, -1, -1)) * 8}


def _thresholds(names):
    return {n: fit_gamma([1.0, 1.2, 0.9, 1.1, 1.3, 0.95, 1.05], p=0.1) for n in names}


def _write(path: Path, models=MODELS, **info) -> bundle_mod.Bundle:
    return write_bundle(path, models=models, spec=DEFAULT_SPEC, thresholds=_thresholds(models),
                        info={"models": {n: {"backend": n.split(".")[1]} for n in models}, **info})


def _rewrite_manifest(root: Path, change) -> None:
    manifest = json.loads((root / "manifest.json").read_text())
    change(manifest)
    (root / "manifest.json").write_text(json.dumps(manifest))


def test_written_bundle_lists_the_sha256_and_size_of_every_file(tmp_path):
    b = _write(tmp_path / "b", gate={"max_auc_drop": 0.01})
    files = sorted(p.name for p in (tmp_path / "b").iterdir())
    assert files == sorted([*MODELS, "feature_spec.json", "threshold.json", "manifest.json"])
    manifest = json.loads((tmp_path / "b/manifest.json").read_text())
    for name in files:
        if name == "manifest.json":
            continue
        data = (tmp_path / "b" / name).read_bytes()
        assert manifest["files"][name] == {"sha256": hashlib.sha256(data).hexdigest(),
                                           "bytes": len(data)}
    assert manifest["spec_digest"] == hashlib.sha256(DEFAULT_SPEC.to_json().encode()).hexdigest()
    assert manifest["schema_version"] == 1 and manifest["gate"] == {"max_auc_drop": 0.01}
    assert manifest["created"].endswith("+00:00")
    assert b.spec == DEFAULT_SPEC and b.models == sorted(MODELS)
    assert b.model_path("onnx", "float") == tmp_path / "b/model_float.onnx"
    assert b.threshold_for("model_int8.tflite") == _thresholds(["x"])["x"]
    with pytest.raises(BundleError, match="has no model_float.tflite"):
        b.model_path("tflite", "float")
    assert oct((tmp_path / "b").stat().st_mode & 0o777) == "0o755"


def test_loader_refuses_a_tampered_model_file_naming_it(tmp_path):
    _write(tmp_path / "b")
    f = tmp_path / "b/model_int8.tflite"
    data = bytearray(f.read_bytes())
    data[100] ^= 0x01
    f.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"model_int8\.tflite: sha256 .* changed after export"):
        load_bundle(tmp_path / "b")


def test_loader_refuses_a_truncated_file(tmp_path):
    _write(tmp_path / "b")
    f = tmp_path / "b/model_float.onnx"
    f.write_bytes(f.read_bytes()[:-10])
    with pytest.raises(BundleError, match=r"model_float\.onnx: \d+ bytes; manifest.json says"):
        load_bundle(tmp_path / "b")


@pytest.mark.parametrize("name", ["model_int8.tflite", "threshold.json", "feature_spec.json"])
def test_loader_refuses_a_missing_file_naming_it(tmp_path, name):
    _write(tmp_path / "b")
    (tmp_path / "b" / name).unlink()
    with pytest.raises(BundleError, match=rf"{name}: missing"):
        load_bundle(tmp_path / "b")


def test_loader_refuses_a_bundle_without_manifest(tmp_path):
    _write(tmp_path / "b")
    (tmp_path / "b/manifest.json").unlink()
    with pytest.raises(BundleError, match="manifest.json: missing"):
        load_bundle(tmp_path / "b")
    with pytest.raises(BundleError, match="absent: does not exist; expected a bundle folder") as e:
        load_bundle(tmp_path / "absent")
    assert e.value.exit_code == 2          # a wrong argument, not a damaged bundle (4)
    (tmp_path / "file").write_text("x")
    with pytest.raises(BundleError, match="file: is not a folder") as e:
        load_bundle(tmp_path / "file")
    assert e.value.exit_code == 2


def test_loader_refuses_a_spec_whose_digest_differs_from_the_manifest(tmp_path):
    """feature_spec.json replaced and its hash updated (a hand-edited bundle): the spec
    digest in the manifest still names the spec the model was trained on."""
    _write(tmp_path / "b")
    other = FeatureSpec(n_mels=64).to_json().encode()
    (tmp_path / "b/feature_spec.json").write_bytes(other)
    _rewrite_manifest(tmp_path / "b", lambda m: m["files"].update(
        {"feature_spec.json": {"sha256": hashlib.sha256(other).hexdigest(), "bytes": len(other)}}))
    with pytest.raises(BundleError, match=r"feature_spec\.json: spec digest .* does not match"):
        load_bundle(tmp_path / "b")


def test_loader_refuses_a_bundle_made_for_other_features_than_expected(tmp_path):
    _write(tmp_path / "b")
    assert load_bundle(tmp_path / "b", expected_spec=DEFAULT_SPEC).spec == DEFAULT_SPEC
    with pytest.raises(BundleError, match=r"feature_spec\.json: .*differ.*'hop_length': \(512, 256\)"):
        load_bundle(tmp_path / "b", expected_spec=FeatureSpec(hop_length=256))


def test_loader_refuses_a_model_file_the_manifest_does_not_list(tmp_path):
    _write(tmp_path / "b")
    (tmp_path / "b/model_float.tflite").write_bytes(b"from another export")
    with pytest.raises(BundleError, match=r"\['model_float.tflite'\] are not in manifest.json"):
        load_bundle(tmp_path / "b")


def test_loader_refuses_a_model_without_threshold_and_another_schema(tmp_path):
    _write(tmp_path / "b")
    thresholds = json.loads((tmp_path / "b/threshold.json").read_text())
    del thresholds["model_float.onnx"]
    data = json.dumps(thresholds).encode()
    (tmp_path / "b/threshold.json").write_bytes(data)
    _rewrite_manifest(tmp_path / "b", lambda m: m["files"].update(
        {"threshold.json": {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}}))
    with pytest.raises(BundleError, match=r"threshold\.json: no threshold for model_float\.onnx"):
        load_bundle(tmp_path / "b")
    _rewrite_manifest(tmp_path / "b", lambda m: m.update(schema_version=99))
    with pytest.raises(BundleError, match="schema_version 99; expected 1"):
        load_bundle(tmp_path / "b")


def test_replacing_a_bundle_leaves_only_the_new_one(tmp_path):
    _write(tmp_path / "b")
    new_models = {"model_int8.onnx": b"new model bytes" * 10}
    b = _write(tmp_path / "b", models=new_models)
    assert b.models == ["model_int8.onnx"]
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == [
        "feature_spec.json", "manifest.json", "model_int8.onnx", "threshold.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]     # no temporary left


def test_replacing_swaps_directories_atomically_on_linux(tmp_path, monkeypatch):
    import sys

    used = []
    from edge import atomic

    real = atomic.exchange
    monkeypatch.setattr(atomic, "exchange", lambda a, b: used.append(real(a, b)) or used[-1])
    _write(tmp_path / "b")
    _write(tmp_path / "b", models={"model_int8.onnx": b"x" * 64})
    assert used == ([True] if sys.platform.startswith("linux") else used)
    assert load_bundle(tmp_path / "b").models == ["model_int8.onnx"]


def test_replacing_without_atomic_exchange_falls_back_to_rename(tmp_path, monkeypatch):
    from edge import atomic

    monkeypatch.setattr(atomic, "exchange", lambda a, b: False)
    _write(tmp_path / "b")
    b = _write(tmp_path / "b", models={"model_int8.onnx": b"x" * 64})
    assert b.models == ["model_int8.onnx"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]


def test_a_failure_while_writing_keeps_the_previous_bundle_and_leaves_no_temporary(tmp_path,
                                                                                   monkeypatch):
    _write(tmp_path / "b")
    before = {p.name: p.read_bytes() for p in (tmp_path / "b").iterdir()}
    calls = []
    real = bundle_mod._write_file

    def failing(path, data):
        calls.append(path.name)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        real(path, data)

    monkeypatch.setattr(bundle_mod, "_write_file", failing)
    with pytest.raises(OSError, match="No space left"):
        _write(tmp_path / "b", models={"model_int8.onnx": b"y" * 64})
    assert {p.name: p.read_bytes() for p in (tmp_path / "b").iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]
    load_bundle(tmp_path / "b")


def test_writing_refuses_to_replace_a_folder_that_is_not_a_bundle(tmp_path):
    target = tmp_path / "data"
    target.mkdir()
    (target / "precious.wav").write_bytes(b"RIFF")
    with pytest.raises(BundleError, match="not empty and is not a bundle"):
        _write(target)
    assert (target / "precious.wav").read_bytes() == b"RIFF"
    (tmp_path / "file").write_text("x")
    with pytest.raises(BundleError, match="not a directory"):
        _write(tmp_path / "file")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _write(empty).models == sorted(MODELS)


def test_writing_refuses_unknown_model_names_and_missing_thresholds(tmp_path):
    with pytest.raises(BundleError, match="model names"):
        write_bundle(tmp_path / "b", models={"model.pt": b"x"}, spec=DEFAULT_SPEC,
                     thresholds=_thresholds(["model.pt"]))
    with pytest.raises(BundleError, match="one threshold per model file"):
        write_bundle(tmp_path / "b", models=MODELS, spec=DEFAULT_SPEC,
                     thresholds=_thresholds(["model_int8.tflite"]))
    assert not (tmp_path / "b").exists()


def test_stale_temporaries_of_killed_writers_are_removed(tmp_path):
    dead = tmp_path / ".b.partial-999999999-abc"      # no such pid
    dead.mkdir()
    (dead / "model_int8.tflite").write_bytes(b"half")
    alive = tmp_path / f".b.partial-{os.getpid()}-xyz"
    alive.mkdir()
    _write(tmp_path / "b")
    assert not dead.exists() and alive.exists()
    shutil.rmtree(alive)


def test_bundle_module_imports_neither_torch_nor_scipy():
    import subprocess
    import sys

    code = ("import sys, edge.bundle, edge.backends\n"
            "bad = [m for m in ('torch', 'scipy', 'tensorflow', 'onnxruntime') if m in sys.modules]\n"
            "assert not bad, bad")
    root = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root,
                   env={**os.environ, "PYTHONPATH": str(root)})


def test_checking_an_output_folder_probes_it_and_leaves_nothing_behind(tmp_path):
    from edge.errors import EdgeAdError

    bundle_mod.check_writable(tmp_path / "new" / "bundle")
    bundle_mod.check_writable(tmp_path)
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "file").write_text("data")
    with pytest.raises(EdgeAdError, match=r"file: exists and is not a folder"):
        bundle_mod.check_writable(tmp_path / "file")
    with pytest.raises(EdgeAdError, match=r"is not a folder"):
        bundle_mod.check_writable(tmp_path / "file" / "bundle")
    with pytest.raises(EdgeAdError, match=r"/proc/edge-ad-test/b: cannot write in /proc"):
        bundle_mod.check_writable("/proc/edge-ad-test/b")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]
