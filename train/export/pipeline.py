"""``edge-ad export``: from a RUN to a verified bundle, with the int8 accuracy gate.

1. Fold BatchNorm into the Linear layers (:mod:`.fold`).
2. Draw a seeded sample of training vectors for calibration.
3. Convert: float and int8 ONNX (:mod:`.onnx`), float and int8 TFLite (:mod:`.tflite`).
   Float is always built, since it is the reference the int8 model is judged against.
4. Score every clip with every model through the edge backends and the run's detector
   head, exactly as the board will (int8 output dequantised, compared with the float
   input, SPEC 4). The head (``head.json``, ``head.bin``) goes into the bundle.
5. Refit the gamma cutoff of each model file on its own scores of the clips the run's
   cutoff was fitted on (validation clips by default, training clips for a run trained
   with the seed's ``--cutoff-on train``), so each keeps the intended false-positive rate p.
6. Per ID, on the validation and test clips: AUC, pAUC and McClish pAUC of every model,
   and the observed false-positive rate of each cutoff on training, validation and test.
7. The int8 gate (:mod:`.gate`): score agreement with float clip by clip, and AUC/pAUC
   drops where a split is large enough to measure them. A failure raises
   :class:`~edge.errors.QuantizationGateError` and writes nothing.
8. Write the bundle atomically (:func:`edge.bundle.write_bundle`).
"""
from __future__ import annotations

import hashlib
import logging
import platform
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from edge import bundle as bundle_mod
from edge.atomic import scratch_dir
from edge.backends import load as load_backend
from edge.errors import EdgeAdError, QuantizationGateError
from edge.threshold import FIT_LOC0, fit_gamma

from . import gate as gate_mod
from .fold import Dense, fold_batchnorm

log = logging.getLogger(__name__)

FORMATS = ("tflite", "onnx")
PRECISIONS = ("float", "int8")
SPLITS = ("val", "test")     # where metrics are reported and the gate looks


def calibration_vectors(run: Any, *, n: int, seed: int) -> np.ndarray:
    """A uniform sample of ``n`` training vectors without replacement, ``(n, d) float32``.

    Every training vector gets a seeded uniform key (clips in sorted path order) and the
    ``n`` smallest keys win: one pass, memory for ``n`` vectors, the same sample for the
    same run and seed on any machine. Returned in key order (a shuffled order).
    """
    rng = np.random.default_rng(seed)
    keys = np.empty(0)
    rows = np.empty((0, run.spec.vector_size), np.float32)
    for clip in sorted(run.clips_in("train"), key=lambda c: str(c.path)):
        v = run.vectors(clip)
        keys = np.concatenate([keys, rng.random(len(v))])
        rows = np.concatenate([rows, v])
        if len(keys) > n:
            keep = np.argpartition(keys, n)[:n]
            keys, rows = keys[keep], rows[keep]
    if len(rows) == 0:
        raise EdgeAdError(f"{run.path}: no training vectors to calibrate int8 on")
    order = np.argsort(keys, kind="stable")
    return np.ascontiguousarray(rows[order])


def cutoff_split(run: Any) -> str:
    """The split whose normal clips the run's cutoff was fitted on: ``"val"`` (default) or
    ``"train"`` (the seed's, ``edge-ad train --cutoff-on train``, and runs made before)."""
    return str(getattr(run, "info", {}).get("cutoff_on", "train"))


def observed_fprs(scores: np.ndarray, split_of: np.ndarray, normal: np.ndarray,
                  cutoff: float) -> dict[str, float | None]:
    """The fraction of normal clips above ``cutoff`` per split (None: no normal clip)."""
    out: dict[str, float | None] = {}
    for split in ("train", *SPLITS):
        sel = (split_of == split) & normal
        out[split] = float(np.mean(scores[sel] > cutoff)) if sel.any() else None
    return out


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _versions(formats: Sequence[str]) -> dict[str, str]:
    import torch

    import edge

    v = {"edge_ad": edge.__version__, "torch": torch.__version__, "numpy": np.__version__,
         "python": platform.python_version()}
    if "onnx" in formats:
        import onnx
        import onnxruntime
        v["onnx"] = onnx.__version__
        v["onnxruntime"] = onnxruntime.__version__
    if "tflite" in formats:
        import tensorflow as tf
        v["tensorflow"] = tf.__version__
        try:
            import ai_edge_litert
            v["ai_edge_litert"] = getattr(ai_edge_litert, "__version__", "unknown")
        except ImportError:
            pass
    return v


def _build(layers: list[Dense], calibration: np.ndarray, workdir: Path, formats: Sequence[str],
           int8: bool) -> dict[str, Path]:
    """Write every model file into ``workdir``: float always, int8 when asked."""
    from . import onnx as onnx_export
    from . import tflite as tflite_export

    paths: dict[str, Path] = {}
    if "onnx" in formats:
        f = workdir / bundle_mod.model_filename("onnx", "float")
        onnx_export.export_float(layers, f)
        paths[f.name] = f
        if int8:
            q = workdir / bundle_mod.model_filename("onnx", "int8")
            onnx_export.quantize_int8(f, q, calibration)
            paths[q.name] = q
    if "tflite" in formats:
        f = workdir / bundle_mod.model_filename("tflite", "float")
        f.write_bytes(tflite_export.convert_float(layers))
        paths[f.name] = f
        if int8:
            q = workdir / bundle_mod.model_filename("tflite", "int8")
            q.write_bytes(tflite_export.convert_int8(layers, calibration, float_io=True))
            paths[q.name] = q
    return paths


def run_head(run: Any) -> Any:
    """The run's detector head; SPEC 4's ``A(X)`` for a run object without one."""
    from edge.heads import MSEHead

    return getattr(run, "head", None) or MSEHead(run.spec)


def _score_all(run: Any, paths: dict[str, Path], *, progress: bool) -> dict[str, np.ndarray]:
    """``{model name: (n_clips,) float64}`` for every model and ``"torch"``, clips in run order."""
    import torch
    from tqdm import tqdm

    from edge.detector import BundleDetector

    head = run_head(run)      # the run's detector head: the bundle carries it
    # The board's scoring object (edge.detector) around each model file, before the bundle
    # exists: the same features, sums and head as edge-ad run and score.
    detectors = {name: BundleDetector(None, p, None, load_backend(p), head)
                 for name, p in sorted(paths.items())}
    scores = {name: np.empty(len(run.clips)) for name in ["torch", *detectors]}
    model = run.model.eval()
    for i, clip in enumerate(tqdm(run.clips, desc="scoring clips", unit="clip",
                                  disable=not progress, leave=False)):
        x = run.vectors(clip)
        with torch.no_grad():
            recon = model(torch.from_numpy(x)).numpy() if head.needs_model else None
        scores["torch"][i] = head.clip_score(x, recon)
        for name, detector in detectors.items():
            scores[name][i] = detector.clip_score(x)
    return scores


def export_run(run: Any, out: str | Path, *, formats: Sequence[str] = FORMATS,
               precisions: Sequence[str] = PRECISIONS, calib: int = 1000,
               max_auc_drop: float = gate_mod.DEFAULTS["max_auc_drop"],
               max_pauc_drop: float = gate_mod.DEFAULTS["max_pauc_drop"],
               min_correlation: float = gate_mod.DEFAULTS["min_correlation"],
               max_shift: float = gate_mod.DEFAULTS["max_shift"],
               max_flip_rate: float = gate_mod.DEFAULTS["max_flip_rate"], seed: int = 0,
               progress: bool = False, jobs: int = 2) -> dict[str, Any]:
    """Export a trained run to a bundle at ``out``; returns the summary (``--json``'s).

    Args:
        run: a :class:`train.runs.Run` (or a RUN path).
        out: the bundle directory; an earlier bundle there is replaced atomically.
        formats: ``"tflite"`` and/or ``"onnx"``.
        precisions: ``"float"`` and/or ``"int8"`` model files to ship.
        calib: training vectors for int8 calibration.
        max_auc_drop, max_pauc_drop: the largest AUC / pAUC an ID (or a split pooled) may
            lose, judged where a split has enough clips (:mod:`.gate`).
        min_correlation, max_shift, max_flip_rate: the gate's score agreement limits.
        seed: seeds the calibration sample.

    Raises:
        QuantizationGateError: int8 lost more than allowed (``.summary`` holds the figures);
            nothing is written.
        BundleError: ``out`` exists and is not a bundle.
    """
    from train.runs import load_run

    if isinstance(run, (str, Path)):
        run = load_run(run)
    formats = [f for f in FORMATS if f in formats]
    precisions = [p for p in PRECISIONS if p in precisions]
    if not formats or not precisions:
        raise EdgeAdError(f"formats {formats} / precisions {precisions}: expected at least one "
                          f"of {list(FORMATS)} and of {list(PRECISIONS)}")
    if calib < 1:
        raise EdgeAdError(f"--calib {calib}: expected at least 1 vector")
    for name, v in (("--max-auc-drop", max_auc_drop), ("--max-pauc-drop", max_pauc_drop),
                    ("--min-correlation", min_correlation), ("--max-flip-rate", max_flip_rate)):
        if not 0 <= v <= 1:
            raise EdgeAdError(f"{name} {v}: expected a value between 0 and 1")
    if not max_shift > 0:
        raise EdgeAdError(f"--max-shift {max_shift}: expected a number > 0 (normal SDs)")
    out = bundle_mod.check_target(out)
    int8 = "int8" in precisions
    names = {(f, p): bundle_mod.model_filename(f, p) for f in formats for p in PRECISIONS}

    run.cache.ensure([c.path for c in run.clips], jobs=jobs, progress=progress)
    layers = fold_batchnorm(run.model)
    calibration = calibration_vectors(run, n=calib, seed=seed) if int8 else None
    with scratch_dir("edge-ad-export") as tmp:   # a killed export's is removed next time
        paths = _build(layers, calibration, tmp, formats, int8)
        scores = _score_all(run, paths, progress=progress)
        model_bytes = {name: p.read_bytes() for name, p in paths.items()}

    clips = run.clips
    split_of = np.array([c.split for c in clips])
    labels = np.array([c.is_anomaly for c in clips], dtype=bool)
    ids = [c.id for c in clips]
    p = run.threshold.p
    floc = 0.0 if run.threshold.fit == FIT_LOC0 else None
    from train import metrics as m

    held_out = np.isin(split_of, SPLITS)
    fit_on = cutoff_split(run)
    normal = ~labels
    thresholds, metrics, models_info = {}, {}, {}
    for name in sorted(paths):
        s = scores[name]
        thresholds[name] = fit_gamma(s[(split_of == fit_on) & normal], p=p, floc=floc)
        cut = thresholds[name].cutoff
        metrics[name] = {}
        for split in SPLITS:
            sel = split_of == split
            metrics[name][split] = (m.evaluate_table(s[sel], labels[sel], [ids[i] for i in np.flatnonzero(sel)],
                                                     cutoff=cut, p=p) if sel.any() else
                                    {"per_id": {}, "overall": None})
        fmt, precision = next(k for k, v in names.items() if v == name)
        ref = scores["torch"] if precision == "float" else scores[names[(fmt, "float")]]
        models_info[name] = {
            "backend": fmt, "precision": precision, "cutoff": cut,
            "observed_fpr": observed_fprs(s, split_of, normal, cut),
            "reference": "torch" if precision == "float" else names[(fmt, "float")],
            "score_correlation_held_out": float(np.corrcoef(s[held_out], ref[held_out])[0, 1])
            if held_out.sum() > 1 else None,
            "score_max_rel_diff_held_out": float(np.max(np.abs(s[held_out] / ref[held_out] - 1)))
            if held_out.any() else None,
            "metrics": metrics[name],
        }
    torch_metrics = {split: m.evaluate_table(scores["torch"][split_of == split],
                                             labels[split_of == split],
                                             [ids[i] for i in np.flatnonzero(split_of == split)],
                                             cutoff=run.threshold.cutoff, p=p)
                     for split in SPLITS if (split_of == split).any()}
    limits = {"max_auc_drop": max_auc_drop, "max_pauc_drop": max_pauc_drop,
              "min_correlation": min_correlation, "max_shift": max_shift,
              "max_flip_rate": max_flip_rate}
    if int8:
        gate = gate_mod.judge(scores, {f: (names[(f, "float")], names[(f, "int8")]) for f in formats},
                              {n: t.cutoff for n, t in thresholds.items()}, labels=labels, ids=ids,
                              splits=split_of, held_out=SPLITS, p=p, limits=limits)
    else:
        gate = {"limits": {**gate_mod.DEFAULTS, **limits}, "checked": 0, "passed": True,
                "failures": [], "agreement": {}, "drops": {}, "note": "no int8 model exported"}
    shipped = sorted(names[(f, pr)] for f in formats for pr in precisions)
    summary: dict[str, Any] = {
        "status": "ok" if gate["passed"] else "gate_failed",
        "bundle": None,
        "run": str(run.path),
        "formats": list(formats), "precisions": list(precisions),
        "models": {n: {k: v for k, v in models_info[n].items() if k != "metrics"}
                   | {"bytes": len(model_bytes[n]), "shipped": n in shipped,
                      "auc": {split: {i: r["auc"] for i, r in metrics[n][split]["per_id"].items()}
                              for split in SPLITS}}
                   for n in sorted(paths)},
        "gate": gate,
    }
    if not gate["passed"]:
        if gate["checked"] == 0:
            msg = ("int8 gate: no validation or test clip to compare int8 with float on; "
                   "no bundle written")
        else:
            formats_failed = sorted({f["format"] for f in gate["failures"]})
            msg = (f"int8 gate failed for {', '.join(formats_failed)}: "
                   f"{'; '.join(gate_mod.describe(f) for f in gate['failures'])}; "
                   f"no bundle written ({out} unchanged)")
        err = QuantizationGateError(msg)
        err.summary = summary
        raise err

    info = {
        "detector": getattr(run, "info", {}).get("detector", "seed"),
        "head": run_head(run).describe(),
        "models": {n: models_info[n] for n in shipped},
        "gate": gate,
        "torch_metrics": torch_metrics,
        "versions": _versions(formats),
        "calibration": {"vectors": int(calib if calibration is None else len(calibration)),
                        "seed": seed, "source": "training clips, uniform sample",
                        "method": "min/max"} if int8 else None,
        "source": {"run": str(Path(run.path).absolute()), "machine": run.machine,
                   "model_pt_sha256": _sha256(Path(run.path) / "model.pt"),
                   "model_config": run.model_config.to_dict(),
                   "n_clips": {s: int((split_of == s).sum()) for s in ("train", *SPLITS)}},
        "threshold_fit": {"p": p, "fit": run.threshold.fit,
                          "on": f"each model's own scores of the run's {fit_on} normal clips"},
    }
    from edge.heads import head_files

    from .dense import bundle_files as c_network_files   # the C kernel's copy of int8 TFLite

    written = bundle_mod.write_bundle(out, models={n: model_bytes[n] for n in shipped},
                                      spec=run.spec, thresholds={n: thresholds[n] for n in shipped},
                                      info=info, extra_files={**c_network_files(
                                          {n: model_bytes[n] for n in shipped}),
                                          **head_files(run_head(run))})
    summary["bundle"] = str(written.path)
    for n in shipped:
        summary["models"][n]["sha256"] = written.manifest["files"][n]["sha256"]
    return summary
