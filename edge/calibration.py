"""On-site calibration: record normal operation, refit the gamma cutoff, rewrite the bundle.

Every installation sounds different (room, mounting, neighbouring machines), so the cutoff
fitted at export is only a starting point. Here the board records ``seconds``
of normal operation through the same source, front end and model as ``edge-ad run``,
scores consecutive, non-overlapping clip-length windows with ``A(X)``, fits the gamma
distribution by maximum likelihood (:func:`edge.threshold.fit_gamma`, numpy only) and
writes the new cutoffs into the bundle: a new ``threshold.json`` and a new manifest with
the hashes updated, the previous manifest and thresholds kept inside the bundle as
``manifest.<UTC time>.json`` and ``threshold.<UTC time>.json``. The bundle is rewritten
with :func:`edge.bundle.write_bundle`, so the switch is atomic: a power cut leaves the old
bundle or the new one, never a mix.
"""
from __future__ import annotations

import datetime as _dt
import logging
import os
from typing import Any, Iterable

import numpy as np

from .capture import CaptureStats
from .errors import EdgeAdError
from .spec import DEFAULT_SPEC, FeatureSpec
from .stream import window_vectors
from .threshold import Threshold, fit_gamma

log = logging.getLogger(__name__)


def record_scores(blocks: Iterable[np.ndarray], models: dict[str, Any], *,
                  spec: FeatureSpec = DEFAULT_SPEC, clip_s: float = 10.0,
                  seconds: float, stats: CaptureStats | None = None,
                  frontend: Any = None, progress: Any = None) -> dict[str, np.ndarray]:
    """Score consecutive clip-length windows of a stream with every model.

    Args:
        blocks: ``(n,) int16`` sample blocks (an audio source).
        models: ``{model file name: edge.detector.BundleDetector}`` (model and head); all
            see the same vectors.
        clip_s: window length in seconds (a training clip: 10 s).
        seconds: audio to record.
        stats: the source's counters; a new gap restarts the framing.
        frontend: streaming front end (default ``edge.features.Frontend``).
        progress: an object with ``update(seconds)`` (a tqdm bar), or None.

    Returns:
        ``{model file name: (n_clips,) float64}`` scores, one per full window.
    """
    if frontend is None:
        from .features import Frontend

        frontend = Frontend(spec=spec)
    n_clip = window_vectors(clip_s, spec=spec)
    total = int(round(seconds * spec.sample_rate))
    windows = {name: detector.window(n_clip) for name, detector in models.items()}
    scores: dict[str, list[float]] = {name: [] for name in models}
    filled = 0
    taken = 0
    gaps = stats.gaps if stats is not None else 0
    for block in blocks:
        block = block[:total - taken]
        if stats is not None and stats.gaps != gaps:
            gaps = stats.gaps
            frontend.reset()
        vectors = frontend.push(block)
        taken += len(block)
        if progress is not None:
            progress.update(len(block) / spec.sample_rate)
        while len(vectors):
            take = vectors[:n_clip - filled]
            vectors = vectors[len(take):]
            for window in windows.values():
                window.add_vectors(take)
            filled += len(take)
            if filled == n_clip:
                for name, window in windows.items():
                    scores[name].append(window.score())
                    window.clear()
                filled = 0
        if taken >= total:
            break
    if taken < total:
        log.warning("the source ended after %.1f s of the %.1f s asked for",
                    taken / spec.sample_rate, seconds)
    return {name: np.asarray(s, dtype=np.float64) for name, s in scores.items()}


def fit_thresholds(scores: dict[str, np.ndarray], *, p: float = 0.1,
                   floc: float | None = 0.0, min_clips: int = 6) -> dict[str, Threshold]:
    """A gamma fit per model file; refuses fewer than ``min_clips`` windows."""
    out = {}
    for name, s in scores.items():
        if len(s) < min_clips:
            raise EdgeAdError(f"{len(s)} clip(s) recorded for {name}; expected at least "
                              f"{min_clips}: record for longer (--minutes)")
        out[name] = fit_gamma(s, p=p, floc=floc)
    return out


def calibration_report(scores: dict[str, np.ndarray], thresholds: dict[str, Threshold],
                       previous: dict[str, Threshold]) -> dict[str, dict[str, Any]]:
    """What a calibration did, per model file: the new and previous cutoffs, the fraction of
    the calibration windows above each, and whether the new fraction is at p.

    A gamma fitted to the windows puts a fraction p of them above its cutoff when it fits;
    when the observed fraction lies outside the 95 % binomial interval of p for that many
    windows (:func:`edge.threshold.binomial_interval`), the entry gets ``"warning"``: the
    scores are not one gamma (a machine that changed state while recording, a noise burst),
    and the board would alarm more or less often than intended.
    """
    from .threshold import binomial_interval

    report = {}
    for name, t in thresholds.items():
        s = np.asarray(scores[name], np.float64)
        r = {"cutoff": t.cutoff, "previous_cutoff": previous[name].cutoff, "shape": t.shape,
             "scale": t.scale, "loc": t.loc, "p": t.p, "n_scores": t.n_scores,
             "observed_fpr_previous": float(np.mean(s > previous[name].cutoff)),
             "observed_fpr_new": float(np.mean(s > t.cutoff))}
        lo, hi = binomial_interval(t.p, len(s))
        r["expected_fraction_interval"] = [lo, hi]
        r["at_p"] = lo <= r["observed_fpr_new"] <= hi
        if not r["at_p"]:
            r["warning"] = (f"{r['observed_fpr_new']:.3f} of the {len(s)} calibration windows "
                            f"lie above the new cutoff, outside {lo:.3f}..{hi:.3f} where a cutoff "
                            f"at p = {t.p:g} puts them 95% of the time: the gamma does not fit "
                            "these scores (was the machine steady and normal throughout?); check "
                            "the recording or record for longer")
        report[name] = r
    return report


def _stamp() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")


#: calibrations whose previous manifest and thresholds a bundle keeps (``--keep-history``).
KEEP_HISTORY = 10


def rewrite_thresholds(bundle_path: str | os.PathLike, thresholds: dict[str, Threshold], *,
                       record: dict[str, Any] | None = None, keep: int = KEEP_HISTORY) -> Any:
    """Write new cutoffs into a verified bundle, keeping the previous manifest and
    thresholds as ``manifest.<stamp>.json`` / ``threshold.<stamp>.json``; atomic.

    Args:
        bundle_path: the bundle directory (verified first; a bad bundle is refused).
        thresholds: ``{model file name: Threshold}`` for some or all model files; the
            others keep their cutoff.
        record: what to note in the manifest's ``calibrations`` list (source, duration).
        keep: the newest calibrations kept, with the files they carry: without a bound,
            every calibration would grow the bundle and its manifest for ever (each kept
            manifest holds the whole list before it).

    Returns:
        The rewritten bundle, verified by :func:`edge.bundle.load_bundle`.
    """
    from .bundle import MANIFEST, SPEC_FILE, THRESHOLD_FILE, load_bundle, write_bundle

    bundle = load_bundle(bundle_path)
    unknown = sorted(set(thresholds) - set(bundle.models))
    if unknown:
        raise EdgeAdError(f"{bundle.path}: no model file(s) {unknown} to calibrate "
                          f"(it holds {bundle.models})")
    root = bundle.path
    manifest = dict(bundle.manifest)
    files = manifest.pop("files")
    stamp = base = _stamp()
    n = 1
    while f"manifest.{stamp}.json" in files:  # two calibrations within one second
        n += 1
        stamp = f"{base}-{n}"
    # Everything the last writer carried besides the bundle's own files is history: keep it.
    carried = {name: (root / name).read_bytes() for name in files
               if name not in (SPEC_FILE, THRESHOLD_FILE, *bundle.models)}
    carried[f"manifest.{stamp}.json"] = (root / MANIFEST).read_bytes()
    carried[f"threshold.{stamp}.json"] = (root / THRESHOLD_FILE).read_bytes()
    new = {**bundle.thresholds, **thresholds}
    for k in ("schema_version", "created", "edge_ad_version", "spec_digest"):
        manifest.pop(k, None)
    manifest["models"] = {name: {k: v for k, v in info.items() if k not in ("sha256", "bytes")}
                          for name, info in manifest["models"].items()}
    entry = {"time": stamp, "previous_manifest": f"manifest.{stamp}.json",
             "previous_threshold": f"threshold.{stamp}.json",
             "models": {name: {"cutoff": t.cutoff, "previous_cutoff": bundle.thresholds[name].cutoff,
                               "n_scores": t.n_scores, "fit": t.fit, "p": t.p}
                        for name, t in thresholds.items()},
             **(record or {})}
    if keep < 0:
        raise EdgeAdError(f"--keep-history {keep}: expected 0 or more calibrations to keep")
    history = [*manifest.get("calibrations", []), entry]
    kept, dropped = history[len(history) - keep:] if keep else [], history[:len(history) - keep]
    for old in dropped:
        for key in ("previous_manifest", "previous_threshold"):
            carried.pop(str(old.get(key)), None)
    if dropped:
        log.info("%s: %d older calibration(s) dropped from the history (keeping %d)",
                 root, len(dropped), keep)
    manifest["calibrations"] = kept
    models = {name: (root / name).read_bytes() for name in bundle.models}
    return write_bundle(root, models=models, spec=bundle.spec, thresholds=new, info=manifest,
                        extra_files=carried)
