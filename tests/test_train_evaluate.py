"""edge-ad evaluate: the per-ID table against scikit-learn, the PCA baseline, the report,
and a real 8-channel MIMII recording through train and evaluate."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from sklearn.decomposition import PCA
from sklearn.metrics import roc_auc_score

from edge import features
from edge.cli import main
from train.pipeline import evaluate_run, format_table
from train.runs import load_run

DATA = Path(__file__).parent / "data" / "mimii-valve"


@pytest.fixture(scope="module")
def evaluation(trained_run):
    return evaluate_run(trained_run, jobs=1, progress=False)


def test_per_id_table_matches_sklearn_on_the_clip_scores(trained_run, evaluation):
    clips = evaluation["clips"]
    assert {c["split"] for c in clips} == {"test"}
    assert len(clips) == sum(1 for c in trained_run.clips if c.split == "test")
    for id_, row in evaluation["table"]["per_id"].items():
        mine = [c for c in clips if c["id"] == id_]
        y = [int(c["label"] == "anomaly") for c in mine]
        s = [c["score"] for c in mine]
        assert row["auc"] == pytest.approx(roc_auc_score(y, s))
        assert row["pauc_mcclish"] == pytest.approx(roc_auc_score(y, s, max_fpr=0.1))
        assert row["n_anomaly"] == sum(y) and row["n_normal"] == len(y) - sum(y)
        cut = trained_run.threshold.cutoff
        assert row["fpr"] == pytest.approx(np.mean([v > cut for v, lab in zip(s, y) if lab == 0]))


def test_pca_baseline_equals_sklearn_pca_with_the_bottleneck_size(trained_run, evaluation):
    train = [c for c in trained_run.clips if c.split == "train"]
    x = np.concatenate([trained_run.vectors(c) for c in train]).astype(np.float64)
    pca = PCA(n_components=trained_run.model_config.bottleneck, svd_solver="full").fit(x)
    for row in evaluation["clips"][:4]:
        clip = next(c for c in trained_run.clips if c.to_dict(trained_run.root)["path"] == row["path"])
        v = trained_run.vectors(clip).astype(np.float64)
        expected = np.mean((pca.inverse_transform(pca.transform(v)) - v) ** 2)
        assert row["pca_score"] == pytest.approx(expected, rel=1e-4)
    base = evaluation["baseline_pca"]
    assert base["components"] == 8 and set(base["table"]["per_id"]) == set(evaluation["table"]["per_id"])
    text = format_table(evaluation)
    assert "PCA AUC" in text and "overall" in text and "mean of IDs" in text


def test_evaluate_cli_json_and_report(trained_run, evaluation, tmp_path, capsys):
    report = tmp_path / "report"
    assert main(["-q", "evaluate", str(trained_run.path), "--json", "--report", str(report), "--jobs", "1"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result["table"]["per_id"]) == {"id_00", "id_02"}
    assert result["table"] == json.loads(json.dumps(evaluation["table"]))   # the library's table
    assert {"score", "label", "id", "path", "pca_score"} <= set(result["clips"][0])
    pngs = ["spectrograms.png", "training.png", "train_scores_gamma.png", "roc.png",
            "score_histograms.png", "confusion.png"]
    md = (report / "report.md").read_text()
    for name in pngs:
        assert (report / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({name})" in md
    assert "| id_00 |" in md and "McClish" in md


def test_evaluate_refuses_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert main(["-q", "evaluate", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "missing" in err
    assert f"{tmp_path}: missing" in err and "expected a complete RUN folder" in err


def _excerpts(src: Path, dst_dir: Path, n: int, seconds: float) -> None:
    """Cut ``n`` consecutive excerpts, kept 8-channel WAVE_FORMAT_EXTENSIBLE int16."""
    x, sr = sf.read(str(src), dtype="int16", always_2d=True)
    step = int(seconds * sr)
    dst_dir.mkdir(parents=True, exist_ok=True)
    for k in range(n):
        sf.write(str(dst_dir / f"{k:08d}.wav"), x[k * step:(k + 1) * step], sr, format="WAV", subtype="PCM_16")


def test_real_8_channel_mimii_recordings_flow_through_train_and_evaluate(tmp_path, capsys):
    root = tmp_path / "valve"
    _excerpts(DATA / "normal_00000000_2s.wav", root / "id_00" / "normal", 4, 0.5)
    _excerpts(DATA / "abnormal_00000000_2s.wav", root / "id_00" / "abnormal", 2, 1.0)
    assert sf.info(str(root / "id_00" / "normal" / "00000000.wav")).channels == 8
    run_dir = tmp_path / "run"
    # Four normal clips leave one for validation: the cutoff is the seed's, on training clips.
    assert main(["-q", "train", str(root), "--out", str(run_dir), "--epochs", "2",
                 "--cache", str(tmp_path / "cache"), "--jobs", "1", "--cutoff-on", "train"]) == 0
    run = load_run(run_dir)
    clip = run.clips[0]
    channel0 = sf.read(str(clip.path), dtype="float32", always_2d=True)[0][:, 0]
    np.testing.assert_array_equal(run.vectors(clip), features.clip_features(channel0))
    capsys.readouterr()
    assert main(["-q", "evaluate", str(run_dir), "--json", "--no-report", "--jobs", "1"]) == 0
    result = json.loads(capsys.readouterr().out)
    row = result["table"]["per_id"]["id_00"]
    assert (row["n_normal"], row["n_anomaly"]) == (1, 2)
    assert 0.0 <= row["auc"] <= 1.0
    mine = [c for c in result["clips"] if c["id"] == "id_00"]
    assert row["auc"] == pytest.approx(roc_auc_score([int(c["label"] == "anomaly") for c in mine],
                                                     [c["score"] for c in mine]))


def test_evaluate_finds_a_moved_dataset_with_data_and_says_so_without(trained_run, tmp_path, capsys):
    import shutil

    run_copy = tmp_path / "run"
    shutil.copytree(trained_run.path, run_copy)
    moved = tmp_path / "moved"
    shutil.copytree(trained_run.root, moved)
    doc = json.loads((run_copy / "clips.json").read_text())
    doc["root"] = str(tmp_path / "gone")
    (run_copy / "clips.json").write_text(json.dumps(doc))
    assert main(["-q", "evaluate", str(run_copy), "--no-report", "--no-baseline", "--jobs", "1"]) == 2
    assert "--data" in capsys.readouterr().err
    assert main(["-q", "evaluate", str(run_copy), "--data", str(moved), "--json", "--no-report",
                 "--no-baseline", "--jobs", "1"]) == 0
    moved_result = json.loads(capsys.readouterr().out)
    original = evaluate_run(trained_run, jobs=1, progress=False, baseline=False)
    assert moved_result["table"] == original["table"]


def test_per_fault_family_auc_on_a_synthetic_plant(trained_run, evaluation):
    doc = json.loads((trained_run.root / "fan" / "synth.json").read_text())
    family = {c["path"]: c["fault"] for c in doc["clips"]}
    clips = evaluation["clips"]
    assert all(c["fault"] == family[c["path"]] for c in clips)
    for name, row in evaluation["per_fault"].items():
        chosen = [c for c in clips if c["label"] == "normal" or c["fault"] == name]
        y = [int(c["label"] == "anomaly") for c in chosen]
        assert row["n"] == sum(y)
        assert row["auc"] == pytest.approx(roc_auc_score(y, [c["score"] for c in chosen]))
