"""Dataset readers for the layouts of SPEC section 5, and the seed's split.

Every layout gives the same thing: a list of :class:`Clip` (path, machine, ID, label,
split). Layouts without a train/test division (MIMII, the seed's subset) get the seed's
split: the normal clips of each ID are dealt, after a seeded shuffle, into 8 stratified
folds, 6 for training, 1 for validation and 1 for test, and every abnormal clip is test.
DCASE layouts keep their own ``train/`` and ``test/``; validation is a seeded eighth of
each ID's training normals.

A folder is read strictly: an audio file that does not fit the layout is an error that
lists it, never silently dropped, since a misplaced file usually means a wrong folder.
"""
from __future__ import annotations

import collections
import dataclasses
import logging
import os
import re
import zlib
from pathlib import Path
from typing import Iterable

import numpy as np

from edge.errors import DatasetError

log = logging.getLogger(__name__)

AUDIO_SUFFIXES = (".wav", ".flac")
N_FOLDS = 8          # the seed's cvpartition(kFold=8, Stratify=true)
VAL_FOLD, TEST_FOLD = 0, 1
NORMAL, ANOMALY = "normal", "anomaly"
TRAIN, VAL, TEST = "train", "val", "test"


@dataclasses.dataclass(frozen=True)
class Clip:
    """One recording. ``path`` is absolute; ``label`` is ``"normal"`` or ``"anomaly"``;
    ``split`` is ``"train"``, ``"val"`` or ``"test"``; ``id`` is e.g. ``"id_00"`` or
    ``"section_00"``."""

    path: Path
    machine: str
    id: str
    label: str
    split: str

    @property
    def is_anomaly(self) -> int:
        return int(self.label == ANOMALY)

    def to_dict(self, root: Path | None = None) -> dict[str, str]:
        path = self.path
        if root is not None:
            try:
                path = self.path.relative_to(root)
            except ValueError:
                pass
        return {"path": path.as_posix(), "machine": self.machine, "id": self.id,
                "label": self.label, "split": self.split}

    @classmethod
    def from_dict(cls, d: dict[str, str], root: Path | None = None) -> "Clip":
        path = Path(d["path"])
        if root is not None and not path.is_absolute():
            path = root / path
        return cls(path=path, machine=d["machine"], id=d["id"], label=d["label"], split=d["split"])


# (layout name, pattern on the path relative to the root, has its own train/test)
_M = r"(?:(?P<machine>[^/]+)/)?"
LAYOUTS: list[tuple[str, re.Pattern[str], bool]] = [
    ("mimii", re.compile(_M + r"id_(?P<id>\d+)/(?P<label>normal|abnormal)/[^/]+$"), False),
    ("seed", re.compile(_M + r"id_(?P<id>\d+)/(?P<label>normal|abnormal)_(?P<id2>\d+)/[^/]+$"), False),
    ("dcase2020", re.compile(_M + r"(?P<split>train|test)/(?P<label>normal|anomaly)_id_(?P<id>\d+)"
                             r"_\d+\.[^/.]+$"), True),
    ("dcase2021", re.compile(_M + r"(?P<split>train|test)/section_(?P<id>\d+)_(?:source|target)_"
                             r"(?:train|test)_(?P<label>normal|anomaly)_\d+(?:_[^/]*)?\.[^/.]+$"), True),
]
_ID_PREFIX = {"mimii": "id_", "seed": "id_", "dcase2020": "id_", "dcase2021": "section_"}


def _audio_files(root: Path) -> list[str]:
    """Audio files under ``root``, relative, sorted; symlinked folders are followed (a
    dataset assembled from links to other disks), each real folder once, so a link
    back up the tree cannot loop."""
    found = []
    seen: set[tuple[int, int]] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        st = os.stat(dirpath)
        if (st.st_dev, st.st_ino) in seen:
            dirnames[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith(".") and name.lower().endswith(AUDIO_SUFFIXES):
                path = os.path.join(dirpath, name)
                if not os.path.isfile(path):
                    # A symlink loop, a dangling link, or a link to a folder: every later
                    # step (resolve, read) would fail on it with a traceback.
                    why = ("a symbolic link that leads nowhere (a loop or a missing target)"
                           if os.path.islink(path) else "not a regular file")
                    raise DatasetError(f"{path}: {why}; expected an audio file")
                found.append(Path(dirpath, name).relative_to(root).as_posix())
    return found


def _listing(paths: Iterable[str], limit: int = 20) -> str:
    paths = list(paths)
    shown = "\n  ".join(paths[:limit])
    more = f"\n  ... and {len(paths) - limit} more" if len(paths) > limit else ""
    return f"\n  {shown}{more}"


def detect_layout(root: Path, files: list[str]) -> str:
    """The layout most of ``files`` fit; DatasetError listing the misfits if any."""
    counts = {name: sum(1 for f in files if pat.fullmatch(f)) for name, pat, _ in LAYOUTS}
    best = max(counts, key=lambda k: counts[k])
    if counts[best] == 0:
        raise DatasetError(
            f"{root}: no audio file fits a known layout (MIMII <machine>/id_XX/normal|abnormal/*.wav, "
            "the seed's id_XX/normal_XX|abnormal_XX/*.wav, DCASE <machine>/train|test/"
            "normal|anomaly_id_XX_*.wav or section_XX_..._normal|anomaly_*.wav); found:"
            + _listing(files))
    pattern = dict((n, p) for n, p, _ in LAYOUTS)[best]
    misfits = [f for f in files if not pattern.fullmatch(f)]
    if best == "seed":
        misfits += [f for f in files if (m := pattern.fullmatch(f)) and m["id"] != m["id2"]]
    if misfits:
        raise DatasetError(f"{root}: {len(misfits)} of {len(files)} audio files do not fit the "
                           f"{best} layout the others follow:" + _listing(sorted(misfits)))
    return best


def seed_split(clips: list[Clip], *, seed: int = 0, test_fold: bool = True) -> list[Clip]:
    """The seed's 8-fold stratified split of normal clips, per ID, seeded.

    Each ID's normal clips (in path order) are shuffled with ``seed`` and dealt into 8
    folds round robin: fold 0 validation, fold 1 test (without ``test_fold`` it trains,
    so a DCASE train folder gives only train and validation), the rest training. Abnormal
    clips are test. The result keeps the input order.
    """
    out = {c.path: c for c in clips}
    by_id: dict[tuple[str, str], list[Clip]] = collections.defaultdict(list)
    for c in clips:
        if c.label == ANOMALY:
            out[c.path] = dataclasses.replace(c, split=TEST)
        else:
            by_id[(c.machine, c.id)].append(c)
    for (machine, id_), group in sorted(by_id.items()):
        group = sorted(group, key=lambda c: c.path)
        # A per-ID generator: adding an ID does not reshuffle the others.
        rng = np.random.default_rng([seed, zlib.crc32(f"{machine}/{id_}".encode())])
        order = rng.permutation(len(group))
        for rank, index in enumerate(order):
            fold = rank % N_FOLDS
            split = VAL if fold == VAL_FOLD else TEST if (fold == TEST_FOLD and test_fold) else TRAIN
            out[group[index].path] = dataclasses.replace(group[index], split=split)
    return [out[c.path] for c in clips]


def resolve_root(root: str | os.PathLike) -> Path:
    """The dataset folder as an absolute path; a symlink loop is a DatasetError."""
    try:
        return Path(root).resolve()
    except (RuntimeError, OSError) as e:   # Python 3.11 raises RuntimeError on a loop
        raise DatasetError(f"{root}: cannot be resolved ({e}); expected a dataset folder") from None


def read_dataset(root: str | os.PathLike, *, machine: str | None = None, seed: int = 0,
                 name: str | None = None) -> list[Clip]:
    """Read a dataset folder in any layout of SPEC section 5.

    Args:
        root: the folder (the one above ``<machine>/``, or the machine folder itself).
        machine: the machine type to keep where the folder holds several.
        seed: seeds the split of layouts without their own train/test.
        name: the machine name of a folder read as one machine's (default: the folder's
            name after resolving links; ``machine`` passes its own, so a linked folder
            keeps the name it has in the plant).

    Returns:
        Clips sorted by path, each with its split.

    Raises:
        DatasetError: no such folder, no audio, files that do not fit, several machine
            types and none chosen, an ID with too few normal clips to train on.
    """
    root = resolve_root(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder (expected a dataset folder)")
    if machine is not None and machine not in (".", "..") and "/" not in machine \
            and (root / machine).is_dir():
        # The machine's own folder, read in its own layout: a plant may mix layouts
        # (a MIMII-layout fan beside a DCASE-layout pump), one per machine folder.
        return read_dataset(root / machine, seed=seed, name=machine)
    files = _audio_files(root)
    if not files:
        raise DatasetError(f"{root}: no audio files (*.wav, *.flac) found; expected a dataset folder")
    layout = detect_layout(root, files)
    pattern, own_split = next((p, s) for n, p, s in LAYOUTS if n == layout)
    clips = []
    for f in files:
        m = pattern.fullmatch(f)
        assert m is not None
        split = m.groupdict().get("split") or TRAIN
        clips.append(Clip(path=root / f, machine=m["machine"] or name or root.name,
                          id=f"{_ID_PREFIX[layout]}{m['id']}",
                          label=NORMAL if m["label"] == NORMAL else ANOMALY, split=split))
    machines = sorted({c.machine for c in clips})
    if machine is not None:
        clips = [c for c in clips if c.machine == machine]
        if not clips:
            raise DatasetError(f"{root}: no clips of machine {machine!r}; found {machines}")
    elif len(machines) > 1:
        raise DatasetError(f"{root}: holds machine types {machines}; choose one with --machine "
                           "(one model is trained per machine type)")
    if not any(c.label == NORMAL for c in clips):
        raise DatasetError(f"{root}: no normal clips; training needs recordings of normal operation")
    if own_split:
        train = seed_split([c for c in clips if c.split == TRAIN], seed=seed, test_fold=False)
        test = [dataclasses.replace(c, split=TEST) for c in clips if c.split == TEST]
        clips = sorted(train + test, key=lambda c: c.path)
    else:
        clips = seed_split(clips, seed=seed)
    _check_trainable(root, clips)
    log.info("%s: %s layout, %d clips (%s)", root, layout, len(clips),
             ", ".join(f"{k} {v}" for k, v in sorted(collections.Counter(c.split for c in clips).items())))
    return clips


def _check_trainable(root: Path, clips: list[Clip]) -> None:
    ids = sorted({c.id for c in clips})
    short = [i for i in ids if not any(c.id == i and c.split == TRAIN for c in clips)]
    if short:
        counts = {i: sum(1 for c in clips if c.id == i and c.label == NORMAL) for i in short}
        raise DatasetError(f"{root}: no training clips left for {counts} (normal clips per ID); "
                           f"the {N_FOLDS}-fold split needs at least 3 normal clips per ID")


def summary(clips: list[Clip]) -> dict[str, dict[str, int]]:
    """Counts per ID and split/label, e.g. ``{"id_00": {"train": 75, "val/normal": 13, ...}}``."""
    out: dict[str, dict[str, int]] = collections.defaultdict(lambda: collections.defaultdict(int))
    for c in clips:
        out[c.id][f"{c.split}/{c.label}"] += 1
    return {k: dict(v) for k, v in sorted(out.items())}
