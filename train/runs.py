"""The RUN directory written by ``edge-ad train`` and read by evaluate and export.

::

    RUN/model.pt            state dict (torch.load(weights_only=True))
    RUN/model.json          ModelConfig
    RUN/feature_spec.json   the FeatureSpec the model was trained on
    RUN/threshold.json      the gamma cutoff fitted on the validation clips' scores (or the
                            training clips', train --cutoff-on train; train.json says which)
    RUN/clips.json          {"root": data folder, "machine", "clips": [{path (relative to
                            root), machine, id, label: normal|anomaly, split: train|val|test}]}
    RUN/scores.json         {"model": "autoencoder", "clips": [{path, score}]} every clip
    RUN/train.json          detector, recipe, seed, history, timings, cache folder, observed FPRs
    RUN/head.json, head.bin the detector's head (edge.heads), fitted on normal training
                            clips; absent in runs from before heads (scored with A(X))

A run is written into a temporary folder beside RUN and swapped into place when complete
(:mod:`edge.atomic`, the same mechanism as bundles), so a failed, interrupted or killed
training leaves the earlier RUN or the new one, never neither.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edge.atomic import replace_folder
from edge.bundle import check_writable
from edge.errors import EdgeAdError
from edge.spec import FeatureSpec
from edge.threshold import Threshold

from .cache import FeatureCache
from .datasets import Clip

RUN_FILES = ("model.pt", "model.json", "feature_spec.json", "threshold.json", "clips.json",
             "scores.json", "train.json")
#: written by every training since detector heads; a RUN without them scores with A(X)
HEAD_FILES = ("head.json", "head.bin")


#: Largest layer a RUN's model.json may ask for: the seed's is 128; a hostile 10**9 would
#: allocate terabytes before any weight is read.
MAX_LAYER = 65536


class RunError(EdgeAdError, ValueError):
    """A RUN folder that is missing, incomplete or already taken."""


def _json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=1, allow_nan=False, default=_to_builtin) + "\n")


def _to_builtin(v: Any) -> Any:
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    if isinstance(v, Path):
        return str(v)
    raise TypeError(f"{type(v).__name__} is not JSON serialisable")


def check_out(out: Path, *, force: bool) -> None:
    """Refuse a non-empty RUN unless ``force``."""
    if out.exists() and not out.is_dir():
        raise RunError(f"{out}: exists and is not a folder (expected a RUN folder to write)")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise RunError(f"{out}: not empty; choose another --out or pass --force to replace it")
    if force and out.is_dir() and any(out.iterdir()) and not any(
            (out / name).is_file() for name in ("train.json", "model.pt")):
        # --force replaces an earlier RUN, never other data (a dataset given as --out).
        raise RunError(f"{out}: not empty and not a RUN folder (no train.json or model.pt); "
                       "refusing to replace it even with --force")
    check_writable(out, expected="a writable folder for the RUN (--out)")


def write_atomically(out: str | os.PathLike, fill: Callable[[Path], None], *, force: bool = False) -> Path:
    """Call ``fill(tmp)`` on a fresh folder beside ``out``, then swap it into place with
    :func:`edge.atomic.replace_folder` (fsynced; an atomic exchange where Linux offers it).

    An existing ``out`` (only with ``force``) is replaced only once the new one is complete
    on disk; if ``fill`` raises or the process is killed, ``out`` is as it was, and what a
    killed writer left beside it is removed at the next start.
    """
    out = Path(out)
    check_out(out, force=force)
    replace_folder(out, fill)
    return out


def write_run(directory: Path, *, model: Any, spec: FeatureSpec, threshold: Threshold,
              root: Path, machine: str, clips: list[Clip], scores: np.ndarray,
              info: dict[str, Any], head: Any = None) -> None:
    """Write every RUN file into ``directory`` (a fresh folder; see :func:`write_atomically`)."""
    from edge.heads import head_files

    from .model import save

    save(model, directory)
    if head is not None:
        for name, data in head_files(head).items():
            (directory / name).write_bytes(data)
    (directory / "feature_spec.json").write_text(spec.to_json() + "\n")
    threshold.save(directory / "threshold.json")
    _json(directory / "clips.json", {"root": str(root), "machine": machine,
                                      "clips": [c.to_dict(root) for c in clips]})
    _json(directory / "scores.json", {"model": info.get("detector", "seed"), "clips": [
        {"path": c.to_dict(root)["path"], "score": float(s)} for c, s in zip(clips, scores)]})
    _json(directory / "train.json", info)


@dataclasses.dataclass
class Run:
    """A trained run, read back. ``model`` is in eval mode."""

    path: Path
    model: Any
    model_config: Any
    spec: FeatureSpec
    threshold: Threshold
    root: Path
    machine: str
    clips: list[Clip]
    scores: dict[str, float]
    info: dict[str, Any]
    head: Any = None

    def __post_init__(self) -> None:
        if self.head is None:
            from edge.heads import MSEHead
            self.head = MSEHead(self.spec)

    @property
    def cache(self) -> FeatureCache:
        c = self.info.get("features", {})
        return FeatureCache(c.get("cache"), spec=self.spec, channel=int(c.get("channel", 0)),
                            mix=bool(c.get("mix", False)))

    def vectors(self, clip: Clip) -> np.ndarray:
        """``(n_vectors, 640) float32`` context vectors of ``clip`` from the feature cache
        (computed now if the cache lost them)."""
        return self.cache.vectors(clip.path)

    def clips_in(self, split: str) -> list[Clip]:
        return [c for c in self.clips if c.split == split]


def load_run(path: str | os.PathLike, *, data: str | os.PathLike | None = None) -> Run:
    """Read a RUN folder written by ``edge-ad train``.

    Args:
        path: the RUN folder.
        data: the dataset folder, when it moved since training (clip paths are stored
            relative to it); default the folder recorded at training time.

    Raises:
        RunError: missing folder or file, unreadable or invalid JSON, a model.pt that is
            not a plain state dict (random bytes, a pickle with code: refused unrun).
    """
    from edge.errors import SpecMismatchError

    from .model import ModelConfig, load

    path = Path(path)
    if not path.is_dir():
        raise RunError(f"{path}: not a folder (expected a RUN folder written by edge-ad train)")
    missing = [f for f in RUN_FILES if not (path / f).is_file()]
    if missing:
        raise RunError(f"{path}: missing {missing}; expected a complete RUN folder written by edge-ad train")
    # Every way a RUN file can be wrong (damaged, edited, hostile) is a RunError naming the
    # file: exit 2, never a traceback.
    parse_errors = (ValueError, KeyError, TypeError, AttributeError, IndexError,
                    RecursionError, OSError, UnicodeDecodeError)
    name = ""
    try:
        docs = {}
        for name in ("clips.json", "scores.json", "train.json", "model.json"):
            docs[name] = json.loads((path / name).read_text())
        clips_doc, scores_doc, info = docs["clips.json"], docs["scores.json"], docs["train.json"]
        name = "model.json"
        config = ModelConfig.from_dict(docs["model.json"])
        if not (isinstance(config.input_size, int) and config.bottleneck >= 1
                and all(isinstance(h, int) and 1 <= h <= MAX_LAYER for h in
                        (config.input_size, config.bottleneck, *config.hidden))
                and len(config.hidden) <= 16):
            raise ValueError(f"layer sizes {config.layer_sizes}: expected at most 16 hidden "
                             f"layers of 1..{MAX_LAYER} units")
    except parse_errors as e:
        raise RunError(f"{path / name}: not valid ({e!r}); expected the file edge-ad train "
                       "wrote") from None
    try:
        spec = FeatureSpec.from_json((path / "feature_spec.json").read_text())
    except SpecMismatchError as e:
        raise SpecMismatchError(f"{path / 'feature_spec.json'}: {e}") from None
    except parse_errors as e:
        raise RunError(f"{path / 'feature_spec.json'}: not valid ({e!r})") from None
    if spec.vector_size != config.input_size:
        raise SpecMismatchError(f"{path}: model input {config.input_size} but feature vectors "
                                f"of {spec.vector_size}")
    if data is not None and not Path(data).is_dir():
        raise RunError(f"--data {data}: not a folder (expected the dataset folder the RUN was "
                       "trained on)")
    try:
        name = "clips.json"
        root = Path(data).resolve() if data is not None else Path(clips_doc["root"])
        clips = [Clip.from_dict(d, root) for d in clips_doc["clips"]]
        name = "scores.json"
        scores = {d["path"]: float(d["score"]) for d in scores_doc["clips"]}
        name = "threshold.json"
        threshold = Threshold.load(path / "threshold.json")
    except EdgeAdError:
        raise   # already names the file
    except parse_errors as e:
        raise RunError(f"{path / name}: not valid ({e!r}); expected the file edge-ad train "
                       "wrote") from None
    try:
        model = load(path)
    except Exception as e:  # noqa: BLE001 - torch.load raises a dozen types for bad files
        # torch.load's messages for a damaged file run to a paragraph (and suggest
        # weights_only=False, which would run the pickle); the first sentence says it.
        first = (str(e).splitlines() or [type(e).__name__])[0].split(". ")[0].strip()
        raise RunError(f"{path / 'model.pt'}: cannot be read as the RUN's weights "
                       f"({type(e).__name__}: {first or 'no detail'}); expected the file "
                       "edge-ad train wrote (a state dict; no pickled code is ever run)") from None
    from edge.heads import load_head

    try:
        head = load_head(path, spec)
    except EdgeAdError as e:
        raise RunError(str(e)) from None
    return Run(path=path, model=model, model_config=config, spec=spec, threshold=threshold,
               root=root, machine=str(clips_doc.get("machine", "")), clips=clips,
               scores=scores, info=info, head=head)
