"""Speed of inference and of the whole edge path, float against int8, in one run.

    python -m pytest bench/bench_models.py --benchmark-only     (or: make bench)

A small model is trained and exported once per session (a few 10 s clips, 3 epochs: the
weights do not matter for speed, the shapes do). Then, one thread each, after warm-up:
- one 10 s clip (309 context vectors in one call) through torch float, ONNX float/int8 and
  TFLite float/int8;
- one vector at a time through the TFLite models (the board's per-vector cost);
- the edge stream loop (``edge.stream.Detector``, as ``edge-ad run`` uses it) over 60 s of
  audio with the int8 TFLite model: WAV blocks in, decisions out.
Goals (issue 6): int8 TFLite at least as fast as float TFLite per clip; the edge path at
least 1000x faster than real time (60 s of audio in at most 60 ms).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import BUDGETS, RATIOS

from train import bench

STREAM_SECONDS = 60.0
RATIOS.extend([("clip tflite float", "clip tflite int8", 1.0),
               ("clip onnx float", "clip onnx int8", 1.0),
               ("clip torch float", "clip tflite int8", 1.0)])
BUDGETS.append(("edge stream loop, 60 s of audio", STREAM_SECONDS / 1000))


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """(Run, Bundle) of a small plant: trained for 3 epochs and exported with the defaults."""
    from edge.bundle import load_bundle
    from train.export import export_run
    from train.fit import Recipe
    from train.pipeline import train_run
    from train.synth import write_plant

    root = tmp_path_factory.mktemp("bench")
    write_plant(root / "plant", machine="fan", ids=(0, 2), n_normal=12, n_abnormal=4, seed=0,
                duration=10.0, progress=False)
    run = train_run(root / "plant", root / "run", recipe=Recipe(epochs=3, seed=0, threads=1),
                    cache_dir=root / "cache", jobs=1, progress=False)
    # A speed bench, not an accuracy gate: 3 epochs on a handful of clips rank noisily.
    export_run(run, root / "bundle", max_auc_drop=1.0, max_pauc_drop=1.0, jobs=1)
    return run, load_bundle(root / "bundle")


@pytest.fixture(scope="session")
def variants(exported):
    run, bundle = exported
    return {v.name: v for v in bench.load_variants(run=run, bundle=bundle)}


@pytest.fixture(scope="session")
def clip_vectors(exported):
    run, _ = exported
    x = run.vectors(run.clips_in("test")[0])
    assert x.shape == (309, 640)
    return x


@pytest.mark.benchmark(group="inference, one 10 s clip (309 x 640)")
@pytest.mark.parametrize("name", bench.VARIANTS)
def test_clip(benchmark, record, variants, clip_vectors, name) -> None:
    run = variants[name].run
    run(clip_vectors)  # warm-up: first call allocates the interpreter's tensors
    out = benchmark(run, clip_vectors)
    assert out.shape == clip_vectors.shape
    record(f"clip {name}")


@pytest.mark.benchmark(group="inference, one vector")
@pytest.mark.parametrize("name", ["tflite float", "tflite int8"])
def test_vector(benchmark, record, variants, clip_vectors, name) -> None:
    run = variants[name].run
    one = np.ascontiguousarray(clip_vectors[:1])
    run(one)
    benchmark(run, one)
    record(f"vector {name}")


@pytest.mark.benchmark(group="edge path")
def test_edge_stream_loop(benchmark, record, exported, tmp_path) -> None:
    import soundfile as sf

    from edge import audio, backends
    from edge.stream import Detector

    run, bundle = exported
    sr = bundle.spec.sample_rate
    clips = [audio.load(c.path) for c in run.clips_in("test")]
    x = np.tile(np.concatenate(clips), 10)[: int(STREAM_SECONDS * sr)]
    wav = Path(tmp_path) / "stream.wav"
    sf.write(wav, x, sr, subtype="PCM_16")
    pcm = sf.read(wav, dtype="int16")[0]
    blocks = [pcm[i:i + 1024] for i in range(0, len(pcm), 1024)]
    path = bundle.model_path(backend="tflite", precision="int8")
    backend = backends.load(path, num_threads=1)
    cutoff = bundle.threshold_for(Path(path).name).cutoff

    def stream() -> int:
        det = Detector(backend, cutoff=cutoff, spec=bundle.spec)
        return sum(len(det.push(b)) for b in blocks)

    decisions = benchmark(stream)
    assert decisions > 0
    record("edge stream loop, 60 s of audio")
