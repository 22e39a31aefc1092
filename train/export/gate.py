"""The int8 gate: does quantisation change what the model says?

An int8 model is judged against the float model of the same format, on every held-out
clip (validation and test), in two parts.

**Score agreement**, judged on any split size, since it compares the two models clip by
clip and needs no anomaly:

- ``correlation``: Pearson correlation of the per-clip scores, at least ``min_correlation``;
- ``max_shift``: the largest change of a clip's log score, in units of the standard deviation
  of the float model's log scores of held-out normal clips (how far int8 moves a clip,
  measured against how far normal clips lie apart), at most ``max_shift``. Log scores, since
  scores span decades and a relative error is what quantisation makes;
- ``flips``: clips whose decision (score above the model's own cutoff) differs between the
  two, at most ``max_flip_rate`` of the clips, and never fewer than one allowed: a clip lying
  on the cutoff may go either way.

**AUC and pAUC drops**, per ID and split and pooled over the IDs of a split, judged only
where the split can measure them: at least ``min_clips`` normal and ``min_clips`` anomalous
clips. A paired, class-stratified bootstrap (the same resampled clips scored by both models)
gives a 95 % interval of each drop; the gate fails when the whole interval lies above the
limit, that is when int8 lost more than the limit beyond the noise of the split. On 13
normal clips the seed's pAUC moves in steps of about 0.026, so one swapped pair used to fail
a sound export; a real loss that large still fails on splits big enough to show it, and a
broken model fails the agreement checks whatever the split size.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

DEFAULTS = {
    "min_correlation": 0.999,
    "max_shift": 0.5,
    "max_flip_rate": 0.01,
    "max_auc_drop": 0.01,
    "max_pauc_drop": 0.02,
    "min_clips": 10,
    "bootstrap": 1000,
}


def agreement(float_scores: np.ndarray, int8_scores: np.ndarray, normal: np.ndarray, *,
              float_cutoff: float, int8_cutoff: float) -> dict[str, Any]:
    """How closely int8 scores follow float scores, clip by clip.

    Args:
        float_scores, int8_scores: ``(n,) float64`` scores of the same clips.
        normal: ``(n,) bool``, the normal clips (their spread is the yardstick).
        float_cutoff, int8_cutoff: each model's own decision value.

    Returns:
        ``{"n", "correlation", "max_rel_diff", "max_shift", "normal_log_sd", "flips",
        "flip_rate"}``.
    """
    f = np.asarray(float_scores, np.float64)
    q = np.asarray(int8_scores, np.float64)
    n = len(f)
    log_f, log_q = np.log(np.maximum(f, 1e-300)), np.log(np.maximum(q, 1e-300))
    sd = float(np.std(log_f[normal], ddof=1)) if np.sum(normal) > 1 else math.nan
    flips = int(np.sum((f > float_cutoff) != (q > int8_cutoff)))
    corr = float(np.corrcoef(f, q)[0, 1]) if n > 1 and np.std(f) > 0 and np.std(q) > 0 else math.nan
    return {
        "n": n,
        "correlation": corr,
        "max_rel_diff": float(np.max(np.abs(q / f - 1))) if n else math.nan,
        "max_shift": float(np.max(np.abs(log_q - log_f)) / sd) if n and sd > 0 else math.nan,
        "normal_log_sd": sd,
        "flips": flips,
        "flip_rate": flips / n if n else math.nan,
    }


def bootstrap_drops(labels: np.ndarray, float_scores: np.ndarray, int8_scores: np.ndarray, *,
                    p: float, rounds: int, seed: int = 0) -> dict[str, Any]:
    """AUC and pAUC (the seed's) of both models and the float-minus-int8 drop with its 95 %
    paired bootstrap interval (normal and anomalous clips resampled separately)."""
    from train import metrics as m

    y = np.asarray(labels, bool)
    f, q = np.asarray(float_scores, np.float64), np.asarray(int8_scores, np.float64)
    pos, neg = np.flatnonzero(y), np.flatnonzero(~y)
    rng = np.random.default_rng(seed)
    yy = np.r_[np.ones(len(pos), bool), np.zeros(len(neg), bool)]
    drops = {"auc": np.empty(rounds), "pauc": np.empty(rounds)}
    for r in range(rounds):
        idx = np.r_[rng.choice(pos, len(pos)), rng.choice(neg, len(neg))]
        drops["auc"][r] = m.auc(yy, f[idx]) - m.auc(yy, q[idx])
        drops["pauc"][r] = m.pauc(yy, f[idx], p=p) - m.pauc(yy, q[idx], p=p)
    out: dict[str, Any] = {"n_normal": len(neg), "n_anomaly": len(pos)}
    for metric, fn in (("auc", m.auc), ("pauc", lambda a, b: m.pauc(a, b, p=p))):
        out[f"{metric}_float"] = fn(y, f)
        out[f"{metric}_int8"] = fn(y, q)
        out[f"{metric}_drop"] = out[f"{metric}_float"] - out[f"{metric}_int8"]
        lo, hi = np.percentile(drops[metric], [2.5, 97.5])
        out[f"{metric}_drop_ci"] = [float(lo), float(hi)]
    return out


def judge(scores: dict[str, np.ndarray], pairs: dict[str, tuple[str, str]],
          cutoffs: dict[str, float], *, labels: np.ndarray, ids: Sequence[str],
          splits: np.ndarray, held_out: Sequence[str], p: float,
          limits: dict[str, float] | None = None) -> dict[str, Any]:
    """The gate over every format.

    Args:
        scores: ``{model file name: (n_clips,) scores}``.
        pairs: ``{format: (float model name, int8 model name)}``.
        cutoffs: ``{model file name: cutoff}``.
        labels: ``(n_clips,) bool``, anomalous clips.
        ids, splits: machine ID and split of each clip.
        held_out: the splits judged (validation and test).
        p: the pAUC bound.
        limits: overrides of :data:`DEFAULTS`.

    Returns:
        ``{"limits", "passed", "checked", "failures": [...], "agreement": {fmt: ...},
        "drops": {fmt: {split: {id or "all": bootstrap_drops(...) + "judged"}}}}``.
    """
    lim = {**DEFAULTS, **(limits or {})}
    y = np.asarray(labels, bool)
    ids_a = np.asarray([str(i) for i in ids])
    held = np.isin(splits, list(held_out))
    failures: list[dict[str, Any]] = []
    result: dict[str, Any] = {"limits": lim, "agreement": {}, "drops": {}}
    checked = 0
    for fmt, (f_name, q_name) in pairs.items():
        f, q = scores[f_name], scores[q_name]
        a = agreement(f[held], q[held], ~y[held], float_cutoff=cutoffs[f_name],
                      int8_cutoff=cutoffs[q_name])
        a["max_flips"] = max(1, int(math.floor(lim["max_flip_rate"] * a["n"])))
        result["agreement"][fmt] = a
        if a["n"]:
            checked += 1
        for check, bad, limit in (
                ("correlation", not a["correlation"] >= lim["min_correlation"], lim["min_correlation"]),
                ("max_shift", not a["max_shift"] <= lim["max_shift"], lim["max_shift"]),
                ("flips", a["flips"] > a["max_flips"], a["max_flips"])):
            if a["n"] and bad:
                failures.append({"format": fmt, "check": check, "value": a[check], "limit": limit})
        result["drops"][fmt] = {}
        for split in held_out:
            in_split = splits == split
            groups = {str(i): in_split & (ids_a == i) for i in sorted(set(ids_a[in_split]))}
            if len(groups) > 1:
                groups["all"] = in_split
            result["drops"][fmt][split] = {}
            for gid, sel in groups.items():
                n_pos, n_neg = int(np.sum(y[sel])), int(np.sum(~y[sel]))
                if n_pos == 0 or n_neg == 0:
                    continue        # one class only (validation clips are all normal)
                d = bootstrap_drops(y[sel], f[sel], q[sel], p=p, rounds=int(lim["bootstrap"]),
                                    seed=len(result["drops"][fmt][split]))
                d["judged"] = min(n_pos, n_neg) >= lim["min_clips"]
                result["drops"][fmt][split][gid] = d
                if not d["judged"]:
                    continue
                checked += 1
                for metric in ("auc", "pauc"):
                    limit = lim[f"max_{metric}_drop"]
                    if d[f"{metric}_drop_ci"][0] > limit:
                        failures.append({"format": fmt, "check": f"{metric}_drop", "split": split,
                                         "id": gid, "float": d[f"{metric}_float"],
                                         "int8": d[f"{metric}_int8"], "value": d[f"{metric}_drop"],
                                         "ci": d[f"{metric}_drop_ci"], "limit": limit})
    result.update(checked=checked, passed=not failures and checked > 0, failures=failures)
    return result


def describe(failure: dict[str, Any]) -> str:
    """One failure as a short phrase for the error line."""
    fmt, check = failure["format"], failure["check"]
    if check == "correlation":
        return f"{fmt}: score correlation {failure['value']:.6f} < {failure['limit']:g}"
    if check == "max_shift":
        return (f"{fmt}: a clip's log score moved {failure['value']:.3g} normal SDs "
                f"(> {failure['limit']:g})")
    if check == "flips":
        return f"{fmt}: {failure['value']} decisions flipped (> {failure['limit']})"
    lo, hi = failure["ci"]
    return (f"{fmt} {failure['split']} {failure['id']}: {check.split('_')[0].upper()} "
            f"{failure['float']:.4f} -> {failure['int8']:.4f} (drop {failure['value']:.4f}, "
            f"95% interval {lo:.4f}..{hi:.4f}, entirely > {failure['limit']:g})")
