"""The evaluation report: the seed's figures as PNG and a Markdown page that shows them.

Figures (matplotlib, Agg backend: no display needed): log-mel spectrograms of a normal
and an abnormal test clip, the training and validation loss per epoch, the histogram of training scores with the fitted gamma density
and the cutoff, the test ROC with the cutoff's operating point, score histograms normal
against abnormal, the confusion matrix at the cutoff.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from edge.threshold import gamma_logpdf

from . import metrics
from .datasets import TRAIN
from .runs import Run


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def fpr_sentence(fpr_obs: dict[str, Any], p: float) -> str:
    """The observed false-positive rates of ``evaluate_run``'s ``observed_fpr`` in words."""
    names = {"train": "training", "val": "validation", "test": "test"}
    fitted_on = fpr_obs.get("fitted_on", "")
    parts = []
    for split, name in names.items():
        r = fpr_obs.get(split)
        if not isinstance(r, dict):
            continue
        text = f"{name} {r['fpr']:.4f} of {r['n']}"
        if split == "train":
            text += " (learned by the model: lower)"
        elif split == fitted_on:
            text += " (the clips the cutoff was fitted on)"
        else:       # held out from the model and the cutoff: where p must hold
            lo, hi = r["interval"]
            text += (f" (held out from both; an exact cutoff gives {lo:.3f}..{hi:.3f} 95% of "
                     f"the time: {'within' if r['within'] else 'OUTSIDE'})")
        parts.append(text)
    return (f"Observed false-positive rate of normal clips at the cutoff (fitted on the "
            f"{names.get(fitted_on, '?')} clips), intended p = {p:g}: " + "; ".join(parts) + ".")


def write_report(run: Run, result: dict[str, Any], *, out: str | os.PathLike) -> Path:
    """Write the PNGs, ``result.json`` and ``report.md`` into ``out``; returns report.md."""
    from .pipeline import markdown_table

    plt = _plt()
    from edge.errors import EdgeAdError

    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise EdgeAdError(f"{out}: cannot create the report folder ({e.strerror}); expected a "
                          "writable folder (--report DIR)") from None
    th = run.threshold
    clips = result["clips"]
    scores = np.array([c["score"] for c in clips])
    labels = np.array([int(c["label"] == "anomaly") for c in clips])
    figures: list[tuple[str, str]] = []

    # 1. log-mel spectrograms of a normal and an abnormal test clip
    test = run.clips_in("test")
    normal = next((c for c in test if c.label == "normal"), None)
    abnormal = next((c for c in test if c.label == "anomaly"), None)
    shown = [(c, t) for c, t in ((normal, "Normal"), (abnormal, "Abnormal")) if c is not None]
    if shown:
        fig, axes = plt.subplots(1, len(shown), figsize=(5.5 * len(shown), 4), squeeze=False)
        spec = run.spec
        for ax, (clip, title) in zip(axes[0], shown):
            frames = np.asarray(run.cache.frames(clip.path))
            secs = frames.shape[0] * spec.hop_length / spec.sample_rate
            im = ax.imshow(10 * frames.T, origin="lower", aspect="auto",
                           extent=[0, secs, 0, spec.n_mels], cmap="magma")
            ax.set_title(f"{title} log-mel spectrogram ({clip.id})")
            ax.set_xlabel("time (s)")
            ax.set_ylabel("mel band")
        fig.colorbar(im, ax=axes[0].tolist(), label="power (dB)")
        figures.append(("spectrograms.png", "Log-mel spectrograms of a normal and an abnormal test clip"))
        fig.savefig(out / figures[-1][0], dpi=110)
        plt.close(fig)

    # 2. the scores the cutoff was fitted on, with the fitted gamma density and the cutoff
    fit_on = run.info.get("cutoff_on", TRAIN)
    fit_name = {TRAIN: "training", "val": "validation"}.get(fit_on, fit_on)
    train_scores = np.array([run.scores[c.to_dict(run.root)["path"]] for c in run.clips
                             if c.split == fit_on and not c.is_anomaly])
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(7, 5), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax1.hist(train_scores, bins=min(50, max(10, len(train_scores) // 4)), color="tab:blue", alpha=0.8)
    ax1.axvline(th.cutoff, color="tab:red", ls="--", label=f"cutoff {th.cutoff:.4g} (p={th.p:g})")
    ax1.set_ylabel("count")
    ax1.set_title(f"Scores of the {fit_name} clips (the cutoff's fit), fitted gamma PDF")
    ax1.legend()
    t = np.linspace(max(th.loc, 0.0) + 1e-12, max(train_scores.max(), th.cutoff) * 1.2, 500)
    ax2.plot(t, np.exp(gamma_logpdf(t, shape=th.shape, scale=th.scale, loc=th.loc)), color="tab:orange")
    ax2.axvline(th.cutoff, color="tab:red", ls="--")
    ax2.set_ylabel("gamma density")
    ax2.set_xlabel(f"clip score ({run.head.describe()})")
    figures.append(("train_scores_gamma.png", f"Scores of the {fit_name} clips, fitted gamma "
                    "density and the cutoff"))
    fig.tight_layout()
    fig.savefig(out / figures[-1][0], dpi=110)
    plt.close(fig)

    history = run.info.get("history") or []
    if history:
        # the training progress plot of the seed: loss per epoch, training and validation
        fig, ax = plt.subplots(figsize=(7, 3.5))
        epochs = [h["epoch"] for h in history]
        ax.plot(epochs, [h["train_loss"] for h in history], "o-", label="training")
        ax.plot(epochs, [h["val_loss"] for h in history], "s-", label="validation")
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss (half MSE)")
        ax.set_title("Training progress")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        figures.append(("training.png", "Training and validation loss per epoch"))
        fig.tight_layout()
        fig.savefig(out / figures[-1][0], dpi=110)
        plt.close(fig)

    both = labels.min() == 0 and labels.max() == 1
    if both:
        # 3. ROC with the cutoff point
        fpr, tpr, _ = metrics.roc(labels, scores)
        c_tpr, c_fpr = metrics.rates_at(labels, scores, th.cutoff)
        fig, ax = plt.subplots(figsize=(5, 5))
        ax.plot(fpr, tpr, label=f"ROC (AUC {metrics.auc(labels, scores):.3f})")
        ax.plot([c_fpr], [c_tpr], "o", color="tab:red", label="cutoff decision point")
        ax.plot([0, 1], [0, 1], ":", color="grey")
        ax.axvspan(0, th.p, color="tab:green", alpha=0.1, label=f"pAUC region (FPR <= {th.p:g})")
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
        ax.set_title("Test set ROC curve")
        ax.grid(True)
        ax.legend(loc="lower right")
        figures.append(("roc.png", "Test ROC with the cutoff's operating point"))
        fig.tight_layout()
        fig.savefig(out / figures[-1][0], dpi=110)
        plt.close(fig)

    # 4. score histograms, normal against abnormal
    fig, ax = plt.subplots(figsize=(7, 4))
    edges = np.linspace(scores.min(), np.quantile(scores, 0.98) if len(scores) > 10 else scores.max(), 60)
    for lab, name in ((0, "normal"), (1, "abnormal")):
        if np.any(labels == lab):
            ax.hist(np.clip(scores[labels == lab], edges[0], edges[-1]), bins=edges, alpha=0.6,
                    weights=np.full(np.sum(labels == lab), 1.0 / np.sum(labels == lab)), label=name)
    ax.axvline(th.cutoff, color="tab:red", ls="--", label="cutoff")
    ax.set_xlabel("reconstruction error A (last bin holds the tail)")
    ax.set_ylabel("fraction of clips")
    ax.set_title("Test scores: normal against abnormal")
    ax.legend()
    figures.append(("score_histograms.png", "Test score histograms, normal against abnormal"))
    fig.tight_layout()
    fig.savefig(out / figures[-1][0], dpi=110)
    plt.close(fig)

    # 5. confusion matrix at the cutoff
    cm = np.array(metrics.confusion(labels, scores, th.cutoff))
    fig, ax = plt.subplots(figsize=(4.2, 3.8))
    ax.imshow(cm, cmap="Blues")
    for i in range(2):
        for j in range(2):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center",
                    color="white" if cm[i, j] > cm.max() / 2 else "black", fontsize=14)
    ax.set_xticks([0, 1], ["normal", "abnormal"])
    ax.set_yticks([0, 1], ["normal", "abnormal"])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("Confusion matrix at the cutoff")
    figures.append(("confusion.png", "Confusion matrix at the cutoff"))
    fig.tight_layout()
    fig.savefig(out / figures[-1][0], dpi=110)
    plt.close(fig)

    comparison = result.get("comparison")
    if comparison:
        # 6. evaluate --detector all: per-ID AUC of every detector, side by side
        names = list(comparison["detectors"])
        ids = list(comparison["detectors"][names[0]]["per_id"])
        fig, ax = plt.subplots(figsize=(max(5.0, 1.2 * len(ids) + 2), 3.8))
        width = 0.8 / len(names)
        for k, name in enumerate(names):
            per_id = comparison["detectors"][name]["per_id"]
            ax.bar(np.arange(len(ids)) + k * width, [per_id[i]["auc"] for i in ids], width,
                   label=f"{name} (mean {comparison['detectors'][name]['overall']['mean_auc']:.3f})")
        ax.set_xticks(np.arange(len(ids)) + 0.4 - width / 2, ids)
        ax.set_ylim(0.4, 1.0)
        ax.set_ylabel("AUC (test clips)")
        ax.set_title("Detectors side by side")
        ax.legend(fontsize=8, loc="lower right")
        figures.append(("detectors.png", "Per-ID AUC of every detector on the same test clips"))
        fig.tight_layout()
        fig.savefig(out / figures[-1][0], dpi=110)
        plt.close(fig)

    (out / "result.json").write_text(json.dumps(result, indent=1) + "\n")
    fpr_obs = result.get("observed_fpr") or {}
    base = result.get("baseline_pca")
    lines = [
        f"# Evaluation of `{run.path}`", "",
        f"Machine type `{run.machine}`, model {run.model_config.layer_sizes}, "
        f"cutoff {th.cutoff:.6g} ({th.fit}: gamma shape {th.shape:.4g}, scale {th.scale:.4g}, "
        f"loc {th.loc:.4g}, p = {th.p:g}).", "",
        fpr_sentence(fpr_obs, th.p), "",
        "## Per machine ID (test clips)", "",
        markdown_table(result), "",
        f"pAUC is the seed's `(1/p) * integral_0^p TPR dFPR` (random classifier: {th.p / 2:g}); "
        "pAUC McClish is `roc_auc_score(max_fpr=p)` as in DCASE (random classifier: 0.5). "
        "TPR and FPR are at the cutoff.",
    ]
    if base:
        lines += ["", f"PCA columns: a linear baseline, PCA with {base['components']} components "
                  f"(the bottleneck size; {100 * base['explained_variance']:.1f}% of the variance) "
                  "fitted on the same training vectors and scored the same way."]
    if result.get("per_fault"):
        lines += ["", "## Synthetic fault families", "",
                  "AUC of each fault family of the synthetic plant against the normal test clips "
                  "(all IDs pooled).", "", "| fault | clips | AUC | PCA AUC |", "|---|---|---|---|"]
        for name, row in result["per_fault"].items():
            pca = f"{row['pca_auc']:.4f}" if "pca_auc" in row else "n/a"
            lines.append(f"| {name} | {row['n']} | {row['auc']:.4f} | {pca} |")
    if comparison:
        from .pipeline import markdown_comparison

        lines += ["", "## Detectors side by side (`--detector all`)", "",
                  f"Every head on this run's network ({comparison['network']}), each fitted on the "
                  "normal training clips, on the same test clips.", "",
                  markdown_comparison(comparison)]
    lines += ["", "## Figures", ""]
    for name, caption in figures:
        lines += [f"### {caption}", "", f"![{caption}]({name})", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path
