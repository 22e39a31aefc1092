"""edge-ad train: the RUN folder, reproducibility, the cache, and refusals."""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import torch

from conftest import TINY_SEED
from edge import audio, features
from edge.cli import main
from edge.errors import AudioError
from edge.threshold import fit_gamma
from train.cache import FeatureCache, VectorSet
from train.fit import Recipe
from train.pipeline import train_run
from train.runs import HEAD_FILES, RUN_FILES, RunError, load_run


def test_run_folder_holds_every_contract_file(trained_run):
    assert sorted(p.name for p in trained_run.path.iterdir() if p.is_file()) == sorted(RUN_FILES + HEAD_FILES)
    state = torch.load(trained_run.path / "model.pt", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    doc = json.loads((trained_run.path / "clips.json").read_text())
    assert {tuple(sorted(c)) for c in doc["clips"]} == {("id", "label", "machine", "path", "split")}
    assert {c["label"] for c in doc["clips"]} == {"normal", "anomaly"}
    assert {c["split"] for c in doc["clips"]} == {"train", "val", "test"}
    info = json.loads((trained_run.path / "train.json").read_text())
    assert len(info["history"]) == 4 and info["seed"] == TINY_SEED
    assert info["recipe"]["betas"] == [0.8, 0.999] and info["recipe"]["lr"] == 0.01
    assert not trained_run.model.training


def test_vectors_come_from_the_feature_kernel(trained_run):
    clip = trained_run.clips[0]
    expected = features.clip_features(audio.load(clip.path))
    np.testing.assert_array_equal(trained_run.vectors(clip), expected)


def test_scores_and_cutoff_are_recomputable_from_the_model(trained_run):
    run = trained_run
    for clip in run.clips[:5]:
        x = run.vectors(clip)
        with torch.no_grad():
            recon = run.model(torch.from_numpy(x)).numpy()
        expected = np.mean((recon.astype(np.float64) - x) ** 2)
        assert run.scores[clip.to_dict(run.root)["path"]] == pytest.approx(expected, rel=1e-5)
    def normal_scores(split):
        return np.array([run.scores[c.to_dict(run.root)["path"]] for c in run.clips
                         if c.split == split and not c.is_anomaly])

    # The default cutoff is fitted on the held-out validation clips (scipy: an independent MLE).
    from scipy import stats

    shape, _, scale = stats.gamma.fit(normal_scores("val"), floc=0)
    assert run.info["cutoff_on"] == "val"
    assert run.threshold.cutoff == pytest.approx(stats.gamma.ppf(0.9, shape, scale=scale), rel=1e-6)
    fpr = run.info["observed_fpr"]
    for split in ("train", "val", "test"):
        assert fpr[split] == pytest.approx(np.mean(normal_scores(split) > run.threshold.cutoff))


def test_same_seed_gives_the_same_weights_and_scores(trained_run, tiny_plant, feature_cache_dir, tmp_path):
    again = train_run(tiny_plant, tmp_path / "again", recipe=Recipe(epochs=4, seed=TINY_SEED, threads=1),
                      cache_dir=feature_cache_dir, jobs=1, progress=False)
    a = torch.load(trained_run.path / "model.pt", weights_only=True)
    b = torch.load(again.path / "model.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert again.scores == trained_run.scores
    other = train_run(tiny_plant, tmp_path / "other", recipe=Recipe(epochs=4, seed=TINY_SEED + 1, threads=1),
                      cache_dir=feature_cache_dir, jobs=1, progress=False)
    c = torch.load(other.path / "model.pt", weights_only=True)
    assert not torch.equal(a["net.0.weight"], c["net.0.weight"])


def test_gathered_batches_equal_context_vectors_of_cached_frames(trained_run, tiny_plant):
    cache = trained_run.cache
    clips = trained_run.clips[:3]
    vs = VectorSet(cache, [c.path for c in clips])
    full = np.concatenate([features.context_vectors(features.logmel_frames(audio.load(c.path))) for c in clips])
    assert len(vs) == len(full)
    idx = np.random.default_rng(0).permutation(len(vs))[:100]
    np.testing.assert_array_equal(vs.gather(idx), full[idx])
    assert isinstance(cache.frames(clips[0].path), np.memmap)


def test_cache_computes_once_and_again_when_the_file_changes(tmp_path, tiny_plant):
    src = next(tiny_plant.rglob("*.wav"))
    wav = tmp_path / "clip.wav"
    shutil.copy(src, wav)
    cache = FeatureCache(tmp_path / "cache")
    cache.ensure([wav], jobs=1, progress=False)
    stored = cache.frames_path(wav)
    first = stored.stat().st_mtime_ns
    cache.ensure([wav], jobs=1, progress=False)
    assert stored.stat().st_mtime_ns == first
    os.utime(wav, ns=(first + 10**9, first + 10**9))
    assert cache.frames_path(wav) != stored


def test_cache_in_two_processes_equals_one(tmp_path, tiny_plant):
    wavs = sorted(tiny_plant.rglob("*.wav"))[:4]
    one, two = FeatureCache(tmp_path / "one"), FeatureCache(tmp_path / "two")
    one.ensure(wavs, jobs=1, progress=False)
    two.ensure(wavs, jobs=2, progress=False)
    for w in wavs:
        np.testing.assert_array_equal(one.frames(w), two.frames(w))


def test_cache_lists_every_unreadable_file(tmp_path, tiny_plant):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF0000WAVEjunk")
    good = next(tiny_plant.rglob("*.wav"))
    with pytest.raises(AudioError, match="(?s)1 of 2 files.*bad.wav"):
        FeatureCache(tmp_path / "c").ensure([good, bad], jobs=1, progress=False)


def test_train_cli_recipe_options_and_lr_schedule(tiny_plant, feature_cache_dir, tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["-q", "train", str(tiny_plant), "--out", str(out), "--detector", "seed", "--epochs", "6", "--lr", "0.02",
               "--hidden", "64", "--bottleneck", "4", "--batch-size", "512", "--cache",
               str(feature_cache_dir), "--jobs", "1", "--threads", "1", "--free-loc", "--p", "0.2"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "cutoff" in printed and "on val clips" in printed
    assert "observed FPR of normal clips train" in printed
    run = load_run(out)
    assert run.model_config.layer_sizes == [640, 64, 4, 64, 640]
    lrs = [row["lr"] for row in run.info["history"]]
    assert lrs == pytest.approx([0.02] * 5 + [0.014])
    assert run.info["recipe"]["batch_size"] == 512
    assert run.threshold.fit == "gamma-mle-free-loc" and run.threshold.p == 0.2


def test_non_empty_run_is_refused_without_force_and_replaced_with_it(
        trained_run, tiny_plant, feature_cache_dir, tmp_path, capsys):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    args = ["-q", "train", str(tiny_plant), "--out", str(out), "--epochs", "1",
            "--cache", str(feature_cache_dir), "--jobs", "1"]
    assert main(args) == 2
    assert "not empty" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "mine"
    # --force replaces an earlier RUN only, never other data (a dataset passed as --out).
    assert main(args + ["--force"]) == 2
    assert "not a RUN folder" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "mine"
    out = tmp_path / "earlier-run"
    shutil.copytree(trained_run.path, out)
    (out / "keep.txt").write_text("mine")
    args[4] = str(out)
    assert main(args + ["--force"]) == 0
    assert not (out / "keep.txt").exists() and (out / "model.pt").is_file()
    with pytest.raises(RunError, match="missing"):
        load_run(tmp_path)


def test_a_failed_training_leaves_nothing_behind(tiny_plant, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(tiny_plant, data)
    (data / "fan" / "id_00" / "normal" / "00000003.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVE")
    out = tmp_path / "runs" / "run"
    rc = main(["-q", "train", str(data), "--out", str(out), "--epochs", "1",
               "--cache", str(tmp_path / "cache"), "--jobs", "1"])
    assert rc == 2
    assert "00000003.wav" in capsys.readouterr().err
    assert not out.exists()
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_batches_are_64_byte_aligned_whatever_the_allocator(trained_run):
    vs = VectorSet(trained_run.cache, [c.path for c in trained_run.clips[:2]])
    for n in (1, 3, 17, 100):
        batch = vs.gather(np.arange(n))
        assert batch.ctypes.data % 64 == 0 and batch.dtype == np.float32 and batch.shape == (n, 640)


def test_default_batch_is_half_the_vectors_until_the_memory_cap():
    from train.fit import MAX_DEFAULT_BATCH, default_batch_size

    assert default_batch_size(91464) == 45732            # the default demo: the seed's half
    assert default_batch_size(11) == 6
    assert default_batch_size(3) == 2
    assert default_batch_size(10 * MAX_DEFAULT_BATCH) == MAX_DEFAULT_BATCH


def test_seed_cutoff_on_training_clips_is_kept_as_an_option(tiny_plant, feature_cache_dir,
                                                             tmp_path, capsys):
    out = tmp_path / "seed"
    assert main(["-q", "train", str(tiny_plant), "--out", str(out), "--epochs", "2",
                 "--cache", str(feature_cache_dir), "--jobs", "1", "--threads", "1",
                 "--cutoff-on", "train"]) == 0
    assert "on train clips" in capsys.readouterr().out
    run = load_run(out)
    train = [run.scores[c.to_dict(run.root)["path"]] for c in run.clips if c.split == "train"]
    assert run.info["cutoff_on"] == "train"
    assert run.threshold.cutoff == pytest.approx(fit_gamma(train, p=0.1).cutoff, rel=1e-12)


def test_too_few_validation_clips_for_the_cutoff_is_refused_before_training(tmp_path, capsys):
    from train.synth import write_plant

    root = tmp_path / "small"
    write_plant(root, machine="fan", ids=(0,), n_normal=8, n_abnormal=2, seed=0, duration=2.0,
                progress=False)
    assert main(["-q", "train", str(root), "--out", str(tmp_path / "run"), "--jobs", "1"]) == 2
    err = capsys.readouterr().err
    assert "normal val clip(s) to fit the cutoff on; expected at least 4" in err
    assert "--cutoff-on train" in err and not (tmp_path / "run").exists()
