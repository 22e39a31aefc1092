"""Conversion of the autoencoder to ONNX and TFLite, float and int8, and the edge backends
that run them; on a briefly trained model over structured synthetic vectors, so these
tests do not depend on the training pipeline (test_export_bundle.py covers a real run).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from edge.backends import load
from edge.errors import BackendError
from edge.scoring import clip_score
from train.export import onnx as onnx_export
from train.export import tflite as tflite_export
from train.export.fold import fold_batchnorm, folded_module, forward_numpy
from train.model import Autoencoder, ModelConfig

from runtime_support import tflite214_python
from ci_env import in_ci

# The module fixture trains a model and runs the TensorFlow Lite converter (~20 s).
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
D = 640


class Plant:
    """Vectors on a 12-dimensional subspace around a log-mel-like offset, plus noise; an
    'anomalous' clip adds a clip-specific offset off that subspace."""

    def __init__(self, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.basis = rng.standard_normal((12, D)).astype(np.float32) / 2
        self.offset = (-6 + 2 * np.sin(np.arange(D) / 20)).astype(np.float32)
        self.rng = np.random.default_rng(seed + 1)

    def swapped(self, n: int = 64, *, seed: int = 99) -> np.ndarray:
        """A clip on another 12-dimensional subspace of the same scale: as far from any
        fixed vector as a normal clip on average, but far from the normal subspace."""
        other = np.random.default_rng(seed).standard_normal((12, D)).astype(np.float32) / 2
        z = self.rng.standard_normal((n, 12)).astype(np.float32)
        return (self.offset + z @ other + 0.2 * self.rng.standard_normal((n, D))).astype(np.float32)

    def clip(self, n: int = 64, *, anomaly: float = 0.0) -> np.ndarray:
        z = self.rng.standard_normal((n, 12)).astype(np.float32)
        x = self.offset + z @ self.basis + 0.2 * self.rng.standard_normal((n, D))
        if anomaly:
            x += anomaly * self.rng.standard_normal(D)
        return x.astype(np.float32)


@pytest.fixture(scope="module")
def plant() -> Plant:
    return Plant()


@pytest.fixture(scope="module")
def model(plant) -> Autoencoder:
    torch.manual_seed(0)
    x = torch.from_numpy(np.concatenate([plant.clip(100) for _ in range(40)]))
    m = Autoencoder(ModelConfig())
    opt = torch.optim.Adam(m.parameters(), lr=1e-2, betas=(0.8, 0.999))
    for _ in range(25):
        for batch in torch.randperm(len(x)).split(500):
            loss = 0.5 * ((m(x[batch]) - x[batch]) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return m.eval()


@pytest.fixture(scope="module")
def calibration(plant) -> np.ndarray:
    return np.concatenate([plant.clip(50) for _ in range(20)])


@pytest.fixture(scope="module")
def held_out(plant) -> list[np.ndarray]:
    """40 normal and 40 anomalous clips, each of a different anomaly strength."""
    strengths = np.linspace(0.05, 0.6, 40)
    return [plant.clip(64) for _ in range(40)] + [plant.clip(64, anomaly=a) for a in strengths]


@pytest.fixture(scope="module")
def models(tmp_path_factory, model, calibration) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("models")
    layers = fold_batchnorm(model)
    paths = {name: out / name for name in
             ("model_float.onnx", "model_int8.onnx", "model_float.tflite", "model_int8.tflite")}
    onnx_export.export_float(layers, paths["model_float.onnx"])
    onnx_export.quantize_int8(paths["model_float.onnx"], paths["model_int8.onnx"], calibration)
    paths["model_float.tflite"].write_bytes(tflite_export.convert_float(layers))
    paths["model_int8.tflite"].write_bytes(tflite_export.convert_int8(layers, calibration))
    return paths


def output_step(path) -> float:
    """The quantisation step of an int8 TFLite model's output: the scale of the tensor its
    final DEQUANTIZE op reads (float I/O) or of its int8 output tensor."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path))
    tensors = {d["index"]: d for d in it.get_tensor_details()}
    ops = it._get_ops_details()
    index = (ops[-1]["inputs"][0] if ops[-1]["op_name"] == "DEQUANTIZE"
             else it.get_output_details()[0]["index"])
    return float(tensors[index]["quantization_parameters"]["scales"][0])


def torch_scores(model, clips) -> np.ndarray:
    with torch.no_grad():
        return np.array([clip_score(c, model(torch.from_numpy(c)).numpy()) for c in clips])


def backend_scores(path, clips) -> np.ndarray:
    backend = load(path)
    return np.array([clip_score(c, backend.run(c)) for c in clips])


# --- BatchNorm folding -------------------------------------------------------------------
def _randomise_batchnorm(model: Autoencoder, seed: int) -> Autoencoder:
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 3)
            m.running_var.copy_(torch.rand(n, generator=g) * 4 + 0.05)
            m.weight.data.copy_(torch.randn(n, generator=g))
            m.bias.data.copy_(torch.randn(n, generator=g))
    return model


def test_folded_layers_equal_the_eval_mode_model_with_batchnorm():
    torch.manual_seed(1)
    model = _randomise_batchnorm(Autoencoder(), seed=2).eval()
    x = np.random.default_rng(3).standard_normal((256, D)) * 2 - 5
    with torch.no_grad():
        reference = model.double()(torch.from_numpy(x)).numpy()   # float64, BN unfolded
    model.float()
    folded = forward_numpy(fold_batchnorm(model), x)              # float64 on folded weights
    scale = np.abs(reference).max()
    assert np.abs(folded - reference).max() <= 1e-6 * scale
    # the float32 torch module built from the folded layers agrees to float32 rounding
    with torch.no_grad():
        f32 = folded_module(fold_batchnorm(model))(torch.from_numpy(x.astype(np.float32))).numpy()
    assert np.abs(f32 - reference).max() <= 1e-5 * scale


def test_folding_uses_running_statistics_even_in_train_mode():
    torch.manual_seed(4)
    model = _randomise_batchnorm(Autoencoder(), seed=5)
    model.train()
    layers = fold_batchnorm(model)
    x = np.random.default_rng(6).standard_normal((32, D))
    with torch.no_grad():
        expected = model.eval().double()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(forward_numpy(layers, x), expected, rtol=1e-5, atol=1e-5)
    assert [d.relu for d in layers] == [True] * 5 + [False]
    assert [d.weight.shape for d in layers] == [(128, 640), (128, 128), (8, 128), (128, 8),
                                               (128, 128), (640, 128)]


def test_folding_refuses_a_module_it_cannot_fold():
    with pytest.raises(ValueError, match="cannot fold a Dropout"):
        fold_batchnorm(torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Dropout()))
    with pytest.raises(ValueError, match="BatchNorm1d must follow a Linear"):
        fold_batchnorm(torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU(),
                                           torch.nn.BatchNorm1d(4)))


# --- float parity --------------------------------------------------------------------------
def test_onnx_float_scores_equal_torch_scores_within_1e_5_relative(model, models, held_out):
    expected = torch_scores(model, held_out)
    got = backend_scores(models["model_float.onnx"], held_out)
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_tflite_float_scores_equal_torch_scores_within_1e_5_relative(model, models, held_out):
    expected = torch_scores(model, held_out)
    got = backend_scores(models["model_float.tflite"], held_out)
    np.testing.assert_allclose(got, expected, rtol=1e-5)


# --- int8 -----------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["onnx", "tflite"])
def test_int8_clip_scores_correlate_with_float_at_least_0_9999(fmt, models, held_out):
    f = backend_scores(models[f"model_float.{fmt}"], held_out)
    q = backend_scores(models[f"model_int8.{fmt}"], held_out)
    assert np.corrcoef(f, q)[0, 1] >= 0.9999
    assert np.abs(q / f - 1).max() < 0.1      # and the scores themselves stay close


@pytest.mark.parametrize("fmt", ["onnx", "tflite"])
def test_int8_model_is_about_a_quarter_of_float(fmt, models):
    ratio = models[f"model_int8.{fmt}"].stat().st_size / models[f"model_float.{fmt}"].stat().st_size
    assert 0.2 <= ratio <= 0.35


def test_onnx_int8_is_qdq_with_unsigned_per_channel_weights_and_activations(models):
    import onnx
    from onnx import numpy_helper

    m = onnx.load(str(models["model_int8.onnx"]))
    inits = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    ops = [n.op_type for n in m.graph.node]
    assert ops.count("Gemm") + ops.count("MatMul") == 6 and "QuantizeLinear" in ops
    weight_dq = [n for n in m.graph.node if n.op_type == "DequantizeLinear"
                 and inits.get(n.input[0]) is not None and inits[n.input[0]].ndim == 2]
    assert len(weight_dq) == 6
    for n in weight_dq:
        w, scale = inits[n.input[0]], inits[n.input[1]]
        assert w.dtype == np.uint8                 # U8U8: no x86 kernel saturates
        assert scale.shape == (w.shape[0],) or scale.shape == (w.shape[1],)   # per channel
    act_q = [n for n in m.graph.node if n.op_type == "QuantizeLinear"]
    assert all(inits[n.input[2]].dtype == np.uint8 for n in act_q)         # U8 activations


def test_tflite_int8_quantises_inside_with_float_io_and_per_channel_weights(models):
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(models["model_int8.tflite"]))
    assert it.get_input_details()[0]["dtype"] == np.float32
    assert it.get_output_details()[0]["dtype"] == np.float32
    ops = [op["op_name"] for op in it._get_ops_details()]
    assert ops[0] == "QUANTIZE" and ops[-1] == "DEQUANTIZE"
    assert ops[1:-1] == ["FULLY_CONNECTED"] * 6
    assert load(models["model_int8.tflite"]).precision == "int8"
    per_channel = [d for d in it.get_tensor_details()
                   if d["dtype"] == np.int8 and len(d["shape"]) == 2
                   and len(d["quantization_parameters"]["scales"]) == d["shape"][0] > 1]
    assert len(per_channel) == 6


def test_tflite_backend_quantises_like_the_models_own_quantize_ops(model, calibration, held_out,
                                                                  tmp_path):
    """Peer: the same int8 model converted with float I/O, where TFLite's QUANTIZE and
    DEQUANTIZE ops (with the scale and zero point the converter chose) run inside."""
    layers = fold_batchnorm(model)
    peer = tmp_path / "float_io.tflite"
    peer.write_bytes(tflite_export.convert_int8(layers, calibration, float_io=True))
    ours = tmp_path / "int8_io.tflite"
    ours.write_bytes(tflite_export.convert_int8(layers, calibration, float_io=False))
    a, b = load(ours), load(peer)
    assert (a.precision, b.precision) == ("int8", "int8")
    assert a._in_q is not None and b._in_q is None            # b's I/O is float
    x = np.concatenate(held_out[::8])
    ya, yb = a.run(x), b.run(x)
    step = float(a._out_q[0])
    assert np.abs(ya - yb).max() <= step * 1.001    # at most one output quantisation step
    assert np.mean(ya == yb) > 0.99


def test_tflite_fixed_batch_model_runs_any_number_of_rows(model, calibration, held_out, models,
                                                          tmp_path):
    layers = fold_batchnorm(model)
    fixed = tmp_path / "fixed4.tflite"
    fixed.write_bytes(tflite_export.convert_int8(layers, calibration, batch=4, float_io=False))
    x = held_out[0][:10]          # 10 rows: two full batches and a padded one
    backend = load(fixed)
    assert backend._fixed_batch == 4
    got = backend.run(x)
    assert got.shape == (10, D) and got.dtype == np.float32
    ref = load(models["model_int8.tflite"]).run(x)
    # same weights, calibration fed in batches of 4 instead of 1: same ranges (min/max)
    np.testing.assert_allclose(got, ref, atol=2 * float(backend._out_q[0]))


def test_backend_returns_float32_of_the_input_shape_and_handles_empty_input(models):
    for path in models.values():
        backend = load(path)
        y = backend.run(np.zeros((3, D), np.float64))
        assert y.shape == (3, D) and y.dtype == np.float32
        assert backend.run(np.zeros((0, D), np.float32)).shape == (0, D)
        assert backend.precision == ("int8" if "int8" in path.name else "float")


def test_backends_refuse_bad_files_and_inputs_with_a_clear_error(models, tmp_path):
    with pytest.raises(BackendError, match="unknown model type '.pt'"):
        load(tmp_path / "model.pt")
    with pytest.raises(BackendError, match="not found"):
        load(tmp_path / "absent.tflite")
    for suffix in (".tflite", ".onnx"):
        garbage = tmp_path / f"garbage{suffix}"
        garbage.write_bytes(b"not a model at all" * 10)
        with pytest.raises(BackendError, match=f"garbage{suffix}"):
            load(garbage)
    with pytest.raises(BackendError, match=r"expected \(n, 640\)"):
        load(models["model_int8.tflite"]).run(np.zeros((2, 128), np.float32))
    with pytest.raises(BackendError, match=r"expected \(n, 640\)"):
        load(models["model_float.onnx"]).run(np.zeros(640, np.float32))


def test_edge_backends_import_neither_torch_nor_tensorflow(models):
    code = ("import sys; from edge.backends import load; import numpy as np\n"
            f"for p in {[str(p) for p in models.values()]!r}: load(p).run(np.zeros((2, 640), 'f4'))\n"
            "bad = [m for m in ('torch', 'tensorflow', 'scipy') if m in sys.modules]\n"
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT,
                   env={**os.environ, "PYTHONPATH": str(ROOT)})


# --- determinism --------------------------------------------------------------------------
def test_conversions_give_identical_bytes_when_repeated(model, calibration, models, tmp_path):
    layers = fold_batchnorm(model)
    onnx_export.export_float(layers, tmp_path / "f.onnx")
    onnx_export.quantize_int8(tmp_path / "f.onnx", tmp_path / "q.onnx", calibration)
    assert (tmp_path / "f.onnx").read_bytes() == models["model_float.onnx"].read_bytes()
    assert (tmp_path / "q.onnx").read_bytes() == models["model_int8.onnx"].read_bytes()
    assert tflite_export.convert_float(layers) == models["model_float.tflite"].read_bytes()
    assert tflite_export.convert_int8(layers, calibration) == models["model_int8.tflite"].read_bytes()
    # no trace of the export machine (paths, stack traces) in the ONNX files
    for name in ("model_float.onnx", "model_int8.onnx"):
        assert b"site-packages" not in models[name].read_bytes()


# --- tflite-runtime 2.14 ------------------------------------------------------------------
def test_tflite_runtime_2_14_loads_the_int8_model_and_agrees_with_ai_edge_litert(models,
                                                                                 held_out,
                                                                                 tmp_path):
    python = tflite214_python()
    if python is None:
        if in_ci():
            pytest.fail("no tflite-runtime 2.14 venv: run scripts/setup-tflite214.sh")
        pytest.skip("no tflite-runtime 2.14 venv (scripts/setup-tflite214.sh makes it)")
    x = np.concatenate(held_out[::10])
    np.save(tmp_path / "x.npy", x)
    code = (
        "import json, sys, numpy as np, tflite_runtime\n"
        "from edge.backends import load\n"
        f"b = load({str(models['model_int8.tflite'])!r})\n"
        f"np.save({str(tmp_path / 'y.npy')!r}, b.run(np.load({str(tmp_path / 'x.npy')!r})))\n"
        "print(json.dumps({'name': b.name, 'version': tflite_runtime.__version__, "
        "'numpy': np.__version__}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONHOME", "VIRTUAL_ENV")}
    out = subprocess.run([str(python), "-c", code], check=True, cwd=ROOT, capture_output=True,
                         text=True, env={**env, "PYTHONPATH": str(ROOT)})
    info = json.loads(out.stdout.strip().splitlines()[-1])
    assert info["name"] == "tflite-runtime" and info["version"] == "2.14.0"
    assert info["numpy"].startswith("1.")
    old = np.load(tmp_path / "y.npy")
    new_backend = load(models["model_int8.tflite"])
    new = new_backend.run(x)
    # The int8 kernels differ (XNNPACK in ai-edge-litert, the built-in ones in 2.14) and may
    # round an intermediate requantisation the other way; that moves outputs by a few steps.
    step = output_step(models["model_int8.tflite"])
    assert np.abs(old - new).max() <= 3.001 * step
    assert np.mean(np.abs(old - new) <= 1.001 * step) > 0.99
    scores_old = [clip_score(c, o) for c, o in zip(np.split(x, 8), np.split(old, 8))]
    scores_new = [clip_score(c, o) for c, o in zip(np.split(x, 8), np.split(new, 8))]
    np.testing.assert_allclose(scores_old, scores_new, rtol=1e-2)


# --- the gate, on a run of synthetic vectors ------------------------------------------------
class VectorRun:
    """What export needs of a ``train.runs.Run``, over vectors instead of audio, so the
    gate is tested on a run whose float model separates anomalies almost perfectly."""

    def __init__(self, path: Path, model, plant: Plant):
        from edge.spec import DEFAULT_SPEC
        from train.datasets import Clip
        from train.model import save

        self.path, self.model, self.model_config = path, model, model.config
        self.spec, self.machine = DEFAULT_SPEC, "vectors"
        save(model, path)
        self.clips, self._vectors = [], {}
        for id_ in ("id_00", "id_02"):
            rows = ([("train", "normal", plant.clip(32)) for _ in range(20)]
                    + [("test", "normal", plant.clip(32)) for _ in range(12)]
                    + [("test", "anomaly", plant.swapped(32)) for _ in range(12)])
            for i, (split, label, x) in enumerate(rows):
                clip = Clip(path=path / f"{id_}_{i:03d}.wav", machine="vectors", id=id_,
                            label=label, split=split)
                self.clips.append(clip)
                self._vectors[clip.path] = x
        train = [clip_score(self._vectors[c.path], model(torch.from_numpy(self._vectors[c.path]))
                            .detach().numpy()) for c in self.clips_in("train")]
        from edge.threshold import fit_gamma
        self.threshold = fit_gamma(train, p=0.1)

        class NoCache:
            def ensure(self, paths, **kwargs):
                pass
        self.cache = NoCache()

    def clips_in(self, split):
        return [c for c in self.clips if c.split == split]

    def vectors(self, clip):
        return self._vectors[clip.path]


@pytest.fixture(scope="module")
def vector_run(tmp_path_factory, model, plant) -> VectorRun:
    return VectorRun(tmp_path_factory.mktemp("vector_run"), model, plant)


def test_gate_passes_a_good_int8_export_and_records_the_drops(vector_run, tmp_path):
    from edge.bundle import load_bundle
    from train.export import export_run

    summary = export_run(vector_run, tmp_path / "b", formats=["onnx"])
    assert summary["status"] == "ok" and summary["gate"]["passed"]
    drops = summary["gate"]["drops"]["onnx"]["test"]
    assert sorted(drops) == ["all", "id_00", "id_02"]        # per ID and pooled
    assert all(abs(d["auc_drop"]) <= 0.005 for d in drops.values())
    assert all(d["judged"] for d in drops.values())           # 12 + 12 clips per ID
    # Each recorded drop: sklearn's AUC of the float file's scores minus the int8 file's;
    # the agreement figures: numpy's correlation and flip count on the same scores.
    from sklearn.metrics import roc_auc_score

    backends = {p: load(tmp_path / "b" / f"model_{p}.onnx") for p in ("float", "int8")}
    clips = vector_run.clips_in("test")
    s = {p: np.array([clip_score(vector_run.vectors(c), b.run(vector_run.vectors(c))) for c in clips])
         for p, b in backends.items()}
    for id_, d in drops.items():
        sel = np.array([id_ in ("all", c.id) for c in clips])
        y = [c.label == "anomaly" for c, k in zip(clips, sel) if k]
        auc = {p: roc_auc_score(y, s[p][sel]) for p in s}
        assert d["auc_drop"] == pytest.approx(auc["float"] - auc["int8"], abs=1e-9), id_
        lo, hi = d["auc_drop_ci"]
        assert lo <= d["auc_drop"] <= hi, id_    # the interval's width: tests/test_gate.py (DeLong)
    agree = summary["gate"]["agreement"]["onnx"]
    assert agree["n"] == len(clips)
    assert agree["correlation"] == pytest.approx(np.corrcoef(s["float"], s["int8"])[0, 1], abs=1e-12)
    cut = {p: summary["models"][f"model_{p}.onnx"]["cutoff"] for p in s}
    assert agree["flips"] == int(np.sum((s["float"] > cut["float"]) != (s["int8"] > cut["int8"])))
    manifest = load_bundle(tmp_path / "b").manifest
    aucs = [r["auc"] for r in manifest["models"]["model_float.onnx"]["metrics"]["test"]["per_id"].values()]
    assert min(aucs) >= 0.95       # the float model separates the swapped clips


def test_gate_failure_exits_3_names_the_ids_writes_nothing_and_keeps_the_previous_bundle(
        trained_run, tmp_path, monkeypatch, capsys):
    """A bad quantisation, forced on a real trained RUN through the CLI: calibrate int8 on
    garbage whose range (10000..10001) misses every real log-mel vector, so every input
    saturates to one value and the int8 model outputs a constant; its scores no longer
    follow the float model's."""
    import train.export.pipeline as pipeline
    from edge.bundle import load_bundle
    from edge.cli import main
    from edge.errors import EXIT_GATE_FAILED
    from train.export import export_run

    target = tmp_path / "bundle"
    export_run(trained_run, target, formats=["onnx"])       # the previous, good bundle
    before = {p.name: p.read_bytes() for p in target.iterdir()}
    rng = np.random.default_rng(0)
    monkeypatch.setattr(pipeline, "calibration_vectors",
                        lambda run, n, seed: (1e4 + rng.random((16, D))).astype(np.float32))
    code = main(["export", str(trained_run.path), "--out", str(target), "--formats", "onnx",
                 "--json"])
    captured = capsys.readouterr()
    assert code == EXIT_GATE_FAILED == 3
    summary = json.loads(captured.out)
    assert summary["status"] == "gate_failed" and summary["bundle"] is None
    assert summary["exit_code"] == 3
    failures = summary["gate"]["failures"]
    checks = {f["check"] for f in failures}
    assert {"correlation", "max_shift"} <= checks
    assert all(f["value"] < f["limit"] if f["check"] == "correlation" else f["value"] > f["limit"]
               for f in failures)
    assert "int8 gate failed for onnx: onnx: score correlation" in captured.err
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]
    load_bundle(target)


def _tamper(kind: str):
    """A wrapper of the ONNX quantiser that breaks the int8 model it writes on purpose:
    ``"scale"`` multiplies the third layer's weight scales by 4 (a wrong scale), ``"zeros"``
    zeroes the second layer's weights (a layer of zeros)."""
    import onnx
    from onnx import numpy_helper

    real = onnx_export.quantize_int8

    def broken(float_path, int8_path, calibration):
        real(float_path, int8_path, calibration)
        m = onnx.load(str(int8_path))
        inits = {t.name: t for t in m.graph.initializer}
        weight_dq = [n for n in m.graph.node if n.op_type == "DequantizeLinear"
                     and n.input[0] in inits and len(inits[n.input[0]].dims) == 2]
        if kind == "scale":
            t = inits[weight_dq[2].input[1]]
            t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t) * 4, t.name))
        else:
            t = inits[weight_dq[1].input[0]]
            t.CopyFrom(numpy_helper.from_array(np.zeros_like(numpy_helper.to_array(t)), t.name))
        onnx.save(m, str(int8_path))
    return broken


@pytest.mark.parametrize("kind", ["scale", "zeros"])
def test_gate_fails_an_int8_model_broken_on_purpose_on_score_agreement(vector_run, tmp_path,
                                                                       monkeypatch, kind):
    from edge.errors import QuantizationGateError
    from train.export import export_run

    monkeypatch.setattr(onnx_export, "quantize_int8", _tamper(kind))
    with pytest.raises(QuantizationGateError) as e:
        export_run(vector_run, tmp_path / "b", formats=["onnx"])
    failures = e.value.summary["gate"]["failures"]
    assert {f["format"] for f in failures} == {"onnx"}
    assert {"correlation", "max_shift"} & {f["check"] for f in failures}
    assert not (tmp_path / "b").exists()
