"""train.datasets: the four layouts of SPEC section 5, the seed's split, and clear errors."""
from __future__ import annotations

import collections
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from edge.errors import DatasetError
from train.datasets import read_dataset


def _wav(path: Path, seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    x = np.random.default_rng(seed).uniform(-0.1, 0.1, 1600).astype(np.float32)
    sf.write(str(path), x, 16000, subtype="PCM_16")


def _counts(clips):
    return collections.Counter((c.id, c.label, c.split) for c in clips)


def _mimii(root: Path, ids=(0, 2), n_normal=16, n_abnormal=3, machine: str | None = "fan") -> Path:
    base = root / machine if machine else root
    for i in ids:
        for k in range(n_normal):
            _wav(base / f"id_{i:02d}" / "normal" / f"{k:08d}.wav", k)
        for k in range(n_abnormal):
            _wav(base / f"id_{i:02d}" / "abnormal" / f"{k:08d}.wav", 100 + k)
    return root


def test_mimii_layout_gives_seed_split_6_1_1_per_id_and_abnormal_in_test(tmp_path):
    clips = read_dataset(_mimii(tmp_path, n_normal=16), seed=0)
    assert len(clips) == 2 * (16 + 3)
    assert {c.machine for c in clips} == {"fan"} and {c.id for c in clips} == {"id_00", "id_02"}
    counts = _counts(clips)
    for i in ("id_00", "id_02"):
        assert counts[(i, "normal", "train")] == 12
        assert counts[(i, "normal", "val")] == 2
        assert counts[(i, "normal", "test")] == 2
        assert counts[(i, "anomaly", "test")] == 3
    assert all(c.path.is_absolute() and c.path.is_file() for c in clips)


def test_uneven_ids_are_stratified_like_8_folds(tmp_path):
    # 20 clips in 8 folds: folds of 3,3,3,3,2,2,2,2 -> val 3, test 3, train 14
    clips = read_dataset(_mimii(tmp_path, ids=(4,), n_normal=20, n_abnormal=1))
    counts = _counts(clips)
    assert (counts[("id_04", "normal", "val")], counts[("id_04", "normal", "test")],
            counts[("id_04", "normal", "train")]) == (3, 3, 14)


def test_split_is_seeded_deterministic_and_changes_with_the_seed(tmp_path):
    root = _mimii(tmp_path, n_normal=24)
    a = read_dataset(root, seed=3)
    b = read_dataset(root, seed=3)
    c = read_dataset(root, seed=4)
    assert a == b
    assert [x.split for x in a] != [x.split for x in c]
    assert _counts(a) == _counts(c)


def test_mimii_without_machine_folder_takes_the_folder_name(tmp_path):
    root = _mimii(tmp_path / "valve", machine=None, ids=(0,), n_normal=8)
    clips = read_dataset(root)
    assert {c.machine for c in clips} == {"valve"}


def test_seed_subset_layout(tmp_path):
    root = tmp_path / "fan6db"
    for i in (0, 6):
        for k in range(8):
            _wav(root / f"id_{i:02d}" / f"normal_{i:02d}" / f"{k:08d}.wav")
        _wav(root / f"id_{i:02d}" / f"abnormal_{i:02d}" / "00000000.wav")
    clips = read_dataset(root)
    counts = _counts(clips)
    assert counts[("id_06", "normal", "train")] == 6 and counts[("id_06", "anomaly", "test")] == 1
    assert {c.machine for c in clips} == {"fan6db"}


def test_dcase2020_layout_keeps_its_own_test_and_takes_val_from_train(tmp_path):
    base = tmp_path / "pump"
    for i in (0, 2):
        for k in range(16):
            _wav(base / "train" / f"normal_id_{i:02d}_{k:08d}.wav")
        for k in range(3):
            _wav(base / "test" / f"normal_id_{i:02d}_{k:08d}.wav")
            _wav(base / "test" / f"anomaly_id_{i:02d}_{k:08d}.wav")
    clips = read_dataset(tmp_path)
    counts = _counts(clips)
    for i in ("id_00", "id_02"):
        assert counts[(i, "normal", "train")] == 14 and counts[(i, "normal", "val")] == 2
        assert counts[(i, "normal", "test")] == 3 and counts[(i, "anomaly", "test")] == 3
    assert all(c.split == "test" for c in clips if "/test/" in c.path.as_posix())


def test_dcase2021_layout_sections_play_the_role_of_ids(tmp_path):
    base = tmp_path / "gearbox"
    for s in (0, 1):
        for k in range(8):
            dom = "source" if k < 6 else "target"
            _wav(base / "train" / f"section_{s:02d}_{dom}_train_normal_{k:04d}_volt_1.0.wav")
        _wav(base / "test" / f"section_{s:02d}_source_test_normal_0000_volt_1.0.wav")
        _wav(base / "test" / f"section_{s:02d}_target_test_anomaly_0000.wav")
    clips = read_dataset(tmp_path)
    assert {c.id for c in clips} == {"section_00", "section_01"}
    counts = _counts(clips)
    assert counts[("section_01", "normal", "train")] == 7 and counts[("section_01", "normal", "val")] == 1
    assert counts[("section_00", "anomaly", "test")] == 1


def test_empty_folder_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetError, match="no audio files"):
        read_dataset(tmp_path)
    with pytest.raises(DatasetError, match="not a folder"):
        read_dataset(tmp_path / "missing")


def test_folder_without_normal_clips_is_a_clear_error(tmp_path):
    _wav(tmp_path / "fan" / "id_00" / "abnormal" / "00000000.wav")
    with pytest.raises(DatasetError, match="no normal clips"):
        read_dataset(tmp_path)


def test_files_that_do_not_fit_the_layout_are_listed(tmp_path):
    root = _mimii(tmp_path, n_normal=8)
    _wav(root / "fan" / "id_00" / "normal" / "extra" / "stray.wav")
    _wav(root / "fan" / "readme.wav")
    (root / "fan" / "notes.txt").write_text("not audio, ignored")
    with pytest.raises(DatasetError) as err:
        read_dataset(root)
    msg = str(err.value)
    assert "2 of" in msg and "fan/readme.wav" in msg and "fan/id_00/normal/extra/stray.wav" in msg


def test_seed_layout_with_a_mismatched_id_folder_is_listed(tmp_path):
    root = tmp_path / "fan6db"
    for k in range(8):
        _wav(root / "id_00" / "normal_00" / f"{k:08d}.wav")
    _wav(root / "id_00" / "normal_02" / "00000000.wav")
    with pytest.raises(DatasetError, match="id_00/normal_02/00000000.wav"):
        read_dataset(root)


def test_several_machines_need_a_choice(tmp_path):
    _mimii(tmp_path, machine="fan", ids=(0,), n_normal=8)
    _mimii(tmp_path, machine="pump", ids=(0,), n_normal=8)
    with pytest.raises(DatasetError, match=r"\['fan', 'pump'\].*--machine"):
        read_dataset(tmp_path)
    assert {c.machine for c in read_dataset(tmp_path, machine="pump")} == {"pump"}
    with pytest.raises(DatasetError, match="no clips of machine 'valve'"):
        read_dataset(tmp_path, machine="valve")


def test_an_id_with_too_few_normal_clips_is_refused(tmp_path):
    _mimii(tmp_path, ids=(0,), n_normal=2, n_abnormal=1)
    with pytest.raises(DatasetError, match="at least 3 normal clips"):
        read_dataset(tmp_path)


def test_mixed_layouts_read_per_machine_and_linked_folders_followed(tmp_path):
    """A plant whose fan is in MIMII layout and whose pump, in DCASE 2020 layout, lies on
    another disk behind a symbolic link (issue 11): each machine reads in its own layout,
    with the same clips and splits as its folder read alone."""
    root = tmp_path / "plant"
    _mimii(root, machine="fan", ids=(0,), n_normal=16)
    pump = tmp_path / "disk2" / "pump-2024"
    for k in range(16):
        _wav(pump / "train" / f"normal_id_00_{k:08d}.wav", k)
    for k in range(3):
        _wav(pump / "test" / f"anomaly_id_00_{k:08d}.wav", 50 + k)
    (root / "pump").symlink_to(pump, target_is_directory=True)
    with pytest.raises(DatasetError, match="do not fit"):
        read_dataset(root)          # no machine chosen: one layout expected, as before
    fan = read_dataset(root, machine="fan")
    assert _counts(fan) == _counts(read_dataset(root / "fan"))
    clips = read_dataset(root, machine="pump")
    assert {c.machine for c in clips} == {"pump"}        # the plant's name, not the target's
    assert len(clips) == 19 and all(c.path.parent.parent == pump.resolve() for c in clips)
    assert sum(c.split == "test" for c in clips) == 3 and sum(c.split == "val" for c in clips) == 2
    # A link inside a machine folder is followed too, and a link back up does not loop.
    (root / "fan" / "id_00" / "loop").symlink_to(root, target_is_directory=True)
    with pytest.raises(DatasetError, match="do not fit"):
        read_dataset(root / "fan")   # the files seen through the loop once do not fit
