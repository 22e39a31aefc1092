"""Shared session fixtures. Others append their own below; keep these fast (seconds)."""
from __future__ import annotations

import pytest

TINY_IDS = (0, 2)
TINY_NORMAL = 16
TINY_ABNORMAL = 6
TINY_DURATION = 3.0      # seconds; 3 s gives 93 frames, 89 context vectors per clip
TINY_SEED = 0


@pytest.fixture(scope="session")
def tiny_plant(tmp_path_factory):
    """A small synthetic plant in MIMII layout: ``<root>/fan/id_{00,02}/{normal,abnormal}/``,
    16 normal and 6 abnormal clips of 3 s per ID. Returns the root folder (a Path)."""
    from train.synth import write_plant

    root = tmp_path_factory.mktemp("tiny_plant")
    write_plant(root, machine="fan", ids=TINY_IDS, n_normal=TINY_NORMAL, n_abnormal=TINY_ABNORMAL,
                seed=TINY_SEED, duration=TINY_DURATION, progress=False)
    return root


@pytest.fixture(scope="session")
def feature_cache_dir(tmp_path_factory):
    """A session-wide feature cache folder (tests never write to ~/.cache)."""
    return tmp_path_factory.mktemp("feature_cache")


@pytest.fixture(scope="session")
def trained_run(tiny_plant, feature_cache_dir, tmp_path_factory):
    """A model trained for a few epochs on ``tiny_plant``: a ``train.runs.Run`` (``.path`` is
    the RUN folder). Read-only for tests: copy it before changing anything."""
    from train.fit import Recipe
    from train.pipeline import train_run

    out = tmp_path_factory.mktemp("trained") / "run"
    return train_run(tiny_plant, out, recipe=Recipe(epochs=4, seed=TINY_SEED, threads=1),
                     cache_dir=feature_cache_dir, jobs=1, progress=False)


@pytest.fixture(scope="session")
def bundle(trained_run, tmp_path_factory):
    """``edge-ad export`` of ``trained_run`` with the defaults (float and int8, TFLite and
    ONNX): a verified ``edge.bundle.Bundle`` (``.path`` is the folder). Read-only for tests:
    copy it before changing anything. Takes ~10 s (TensorFlow import and conversion)."""
    from edge.bundle import load_bundle
    from train.export import export_run

    out = tmp_path_factory.mktemp("export") / "bundle"
    export_run(trained_run, out)
    return load_bundle(out)
