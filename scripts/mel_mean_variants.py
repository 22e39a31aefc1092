#!/usr/bin/env python3
"""Fits of the ``mel-mean`` head other than the clip-level Gaussian, on the selection plants.

docs/detectors.md ("How the default was chosen") lists what was tried; this script gives
the later rows. No network is trained: ``mel-mean`` reads only the log-mel frames. For each
plant (generated as ``scripts/measure_detectors.py`` does), on its normal training and
validation clips, one Gaussian per machine ID with Ledoit-Wolf shrinkage, a test clip
scored against the nearest ID, per-ID AUC on the test clips:

- ``clip-mean L=None``: the head as it ships (clip means, one row per clip);
- ``clip-mean L``: the covariance from means of L-frame sub-windows, the clip mean scored;
- ``segmean/segmax/segtop3 L``: each sub-window scored, then the mean, the max or the mean
  of the 3 largest over the clip;
- ``knn-maha k`` / ``knn-z k``: the mean distance to the k nearest normal training clips
  of the ID, in the Gaussian's Mahalanobis metric or in per-band z-scores;
- ``quietest P``: the mean over the clip's quietest P of frames (the background's clanks
  left out);
- ``low N/F``: the log Welch spectrum (segment N) up to F Hz, finer than the mel bands, and
  its ensemble with the clip mean (standardised on the fitting clips themselves, which
  flatters it);
- ``pooled cov`` / ``blend a``: the IDs' own means with one within-ID covariance pooled
  over the plant's IDs (Ledoit-Wolf on the centred clips, 3 or 4 times the rows), or each
  ID's sample covariance blended with it, ``(1 - a) S_id + a S_pooled``;
- ``sk median``: per 125 Hz bin of a short STFT (128 samples, 8 ms), the log spectral
  kurtosis of the power, E|X|^4 / (E|X|^2)^2, per 1 s segment, median over the segments
  (a clank fills one or two), its own Gaussian; alone, appended to the means, and in a
  rank ensemble with them (standardised in-sample, which flatters it);
- ``id-clf``: the DCASE 2021-2023 self-supervised idea, a classifier of the machine ID
  (logistic regression on standardised clip means, or on 31-frame sub-window means
  averaged over the clip), the score minus the log-probability of the clip's own ID;
- ``resid max/top8/sum r^4``: the bands' conditional residuals under the Gaussian,
  reduced by their largest squares (a fault that moves one band);
- ``cv shrink T``: the covariance shrunk towards T (identity, diagonal, within-clip
  covariance) by the weight with the best cross-validated likelihood of normal clips;
- ``env fine``: four bands' power envelopes, their spectra at 0.1 Hz resolution max-pooled
  to 1 Hz, 1-100 Hz (periodic knocks and once-per-turn modulation as lines), alone and in
  a rank ensemble with the means;
- ``lines``: tonal-line prominence from 5 to 400 Hz at 0.24 Hz resolution (shaft orders
  and the half orders of looseness), alone and with the means (a weighted sum of the
  standardised log scores, or the larger of the two);
- ``frame cov/corr/log sd``: the within-clip covariance of the log-mel frames (32 bands),
  its correlations, or the bands' standard deviations, alone and in such a sum with the
  means.

The ensembles here standardise each part's log score on the fitting clips themselves
(in-sample), which flatters them.

    .venv/bin/python scripts/mel_mean_variants.py --out /tmp/sel --plants E F G

``--extra-normals N`` prints instead the clip mean against the trimmed means (quietest P),
the per-band median, the per-band mean of the middle 80 % of the clip's frames (each band
sorted on its own) and the mean of frames clipped per band to the training frames' median
+- 2 robust standard deviations, fitted on the training normals, each ID's test clips
scored with their 13 normals and with N fresh normals more (``measure_detectors.py``'s
``extra_normal_clips``). Three more rows there: the Gaussian fitted on the training and
validation normals (``fit train+val``, 11-13 more clips per ID); ``one-sided shift``, the part
of the distance a non-negative shift of the bands explains (a fault adds sound); and
``given clank share``, the distance conditioned on what the loudest 10 % of frames add in 4
broad bands. And the tonal lines again (``lines``, alone, and ``W mean+W lines oof``: the
weighted sum of the two parts' log distances, each standardised out-of-fold as the shipped
ensemble does, instead of in-sample).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure_detectors import extra_normal_clips, make_plant  # noqa: E402


def maha(d: np.ndarray, precision: np.ndarray) -> np.ndarray:
    return np.einsum("...i,ij,...j->...", d, precision, d)


def segments(frames: np.ndarray, length: int) -> np.ndarray:
    n = len(frames) // length
    return frames[:n * length].reshape(n, length, -1).mean(1)


def plant_scores(name: str, out: Path) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.covariance import LedoitWolf

    from train.cache import FeatureCache
    from train.datasets import TEST, read_dataset

    clips = read_dataset(make_plant(name, out))
    cache = FeatureCache(out / "cache")
    cache.ensure([c.path for c in clips], jobs=2)
    frames = [np.asarray(cache.frames(c.path), np.float64) for c in clips]
    split = np.array([c.split for c in clips])
    labels = np.array([int(c.is_anomaly) for c in clips])
    ids = np.array([c.id for c in clips])
    fit = (split != TEST) & (labels == 0)
    means = np.array([f.mean(0) for f in frames])
    variants: dict[str, np.ndarray] = {}
    rows = {g: np.flatnonzero(fit & (ids == g)) for g in sorted(set(ids))}
    variants["clip-mean L=None"] = nearest_gaussian(means, fit, ids)   # the head as it ships
    for length in (156, 62, 31, 10):
        models = {}
        for g, r in rows.items():
            x = np.concatenate([segments(frames[i], length) for i in r])
            models[g] = (means[r].mean(0), LedoitWolf().fit(x).precision_)
        variants[f"clip-mean L={length}"] = np.array(
            [min(maha(means[i] - m, p) for m, p in models.values()) for i in range(len(clips))])
        per_segment = []
        for f in frames:
            s = segments(f, length)
            m, p = min(models.values(), key=lambda mp: maha(s - mp[0], mp[1]).mean())
            per_segment.append(maha(s - m, p))
        variants[f"segmean L={length}"] = np.array([d.mean() for d in per_segment])
        variants[f"segmax L={length}"] = np.array([d.max() for d in per_segment])
        variants[f"segtop3 L={length}"] = np.array([np.sort(d)[-3:].mean() for d in per_segment])
    fitted = {g: (means[r], LedoitWolf().fit(means[r]).precision_, means[r].std(0) + 1e-9)
              for g, r in rows.items()}
    for k in (1, 3, 5, 10):
        for metric in ("maha", "z"):
            scores = []
            for i in range(len(clips)):
                best = np.inf
                for g, (x, p, sd) in fitted.items():
                    d = maha(x - means[i], p) if metric == "maha" else (((x - means[i]) / sd) ** 2).sum(1)
                    d = np.sort(d)
                    if fit[i] and ids[i] == g:
                        d = d[1:]          # a training clip leaves itself out
                    best = min(best, d[:k].mean())
                scores.append(best)
            variants[f"knn-{metric} k={k}"] = np.array(scores)
    keeps = (0.95, 0.9, 0.8, 0.6)
    trimmed = [quietest_means(f, keeps) for f in frames]
    for j, keep in enumerate(keeps):
        variants[f"quietest {keep:.0%}"] = nearest_gaussian(np.array([t[j] for t in trimmed]), fit, ids)
    z = lambda v: (np.log(v) - np.log(v[fit]).mean()) / np.log(v[fit]).std()   # in-sample: generous
    settings = ((4096, 1000), (8192, 500), (16384, 250))
    signals = [read_mono(c.path) for c in clips]                # each WAV read once
    spectra = [low_spectra(x, sr, settings) for x, sr in signals]
    for k, (nperseg, fmax) in enumerate(settings):
        low = nearest_gaussian(np.array([s[k] for s in spectra]), fit, ids)
        variants[f"low {nperseg}/{fmax}"] = low
        variants[f"0.85 mean+0.15 low {nperseg}/{fmax}"] = np.exp(
            0.85 * z(variants["clip-mean L=None"]) + 0.15 * z(low))
    variants.update(pooled_covariance(means, fit, ids))
    kurtosis = np.array([segment_kurtosis(x, sr) for x, sr in signals])
    variants["sk median"] = nearest_gaussian(kurtosis, fit, ids)
    variants["mean + sk median"] = nearest_gaussian(np.hstack([means, kurtosis]), fit, ids)
    variants["0.85 mean+0.15 sk median"] = np.exp(
        0.85 * z(variants["clip-mean L=None"]) + 0.15 * z(variants["sk median"]))
    variants.update(id_classifier(means, frames, fit, ids))
    variants.update(sparse_residuals(means, fit, ids))
    variants.update(cv_shrinkage(means, frames, fit, ids))
    envelope = np.array([fine_envelope_spectra(x, sr) for x, sr in signals])
    variants["env fine"] = nearest_gaussian(envelope, fit, ids)
    variants["0.85 mean+0.15 env fine"] = np.exp(
        0.85 * z(variants["clip-mean L=None"]) + 0.15 * z(variants["env fine"]))
    lines = np.array([line_prominence(x, sr) for x, sr in signals])
    variants["lines"] = nearest_gaussian(lines, fit, ids)
    variants["0.8 mean+0.2 lines"] = np.exp(0.8 * z(variants["clip-mean L=None"]) + 0.2 * z(variants["lines"]))
    variants["max(mean, lines - 1)"] = np.exp(np.maximum(z(variants["clip-mean L=None"]), z(variants["lines"]) - 1.0))
    for variant, sc in frame_structure(frames, fit, ids).items():
        variants[variant] = sc
        variants[f"0.85 mean+0.15 {variant}"] = np.exp(0.85 * z(variants["clip-mean L=None"]) + 0.15 * z(sc))
    return variants, labels, ids, split == TEST


def line_prominence(x: np.ndarray, sr: int, bands: int = 40) -> np.ndarray:
    """Tonal lines below the mel bands' resolution: the clip's Welch spectrum at 0.24 Hz
    (segments of 65536 samples at 16 kHz), each bin's log power above the running median
    of +-2 Hz around it, and the largest such prominence in each of ``bands`` log-spaced
    bands from 5 to 400 Hz. Shaft orders, half orders (looseness) and their sidebands are
    lines; the max in a band keeps a line's height while the speed moves it."""
    import scipy.ndimage as ndi
    import scipy.signal as sps

    f, p = sps.welch(x, sr, nperseg=65536, noverlap=49152)
    keep = (f >= 3) & (f <= 420)      # 2 Hz beyond the bands: each median has its +-2 Hz
    f, logp = f[keep], np.log(p[keep] + 1e-20)
    prominence = logp - ndi.median_filter(logp, size=int(round(4.0 / (f[1] - f[0]))) | 1)
    edges = np.geomspace(5, 400, bands + 1)
    return np.array([prominence[(f >= a) & (f < b)].max() for a, b in zip(edges[:-1], edges[1:])])


def frame_structure(frames: list[np.ndarray], fit: np.ndarray, ids: np.ndarray,
                    pool: int = 4) -> dict[str, np.ndarray]:
    """The within-clip structure of the log-mel frames (pooled to ``n_mels / pool`` bands),
    for faults that make bands rise and fall together: the clip's frame covariance scored
    by its divergence ``tr(R^-1 C) - log det(R^-1 C) - k`` from the ID's mean within-clip
    covariance R (the nearest ID), a Gaussian over the Fisher-z of its correlations, and
    one over the bands' log standard deviations."""
    x = np.stack([f.reshape(len(f), -1, pool).mean(2) for f in frames])
    k = x.shape[2]
    xc = x - x.mean(1, keepdims=True)
    cov = np.einsum("nti,ntj->nij", xc, xc) / x.shape[1] + 1e-6 * np.eye(k)
    _, logdet = np.linalg.slogdet(cov)
    divergence = []
    for g in sorted(set(ids)):
        ref = cov[fit & (ids == g)].mean(0)
        m = np.linalg.solve(ref, cov)
        divergence.append(np.trace(m, axis1=1, axis2=2) - (logdet - np.linalg.slogdet(ref)[1]) - k)
    sd = np.sqrt(np.einsum("nii->ni", cov))
    corr = cov / sd[:, :, None] / sd[:, None, :]
    upper = np.triu_indices(k, 1)
    return {"frame cov": np.min(divergence, 0),
            "frame corr": nearest_gaussian(np.arctanh(np.clip(corr[:, upper[0], upper[1]], -0.999, 0.999)), fit, ids),
            "frame log sd": nearest_gaussian(np.log(sd), fit, ids)}


def id_classifier(means: np.ndarray, frames: list[np.ndarray], fit: np.ndarray,
                  ids: np.ndarray) -> dict[str, np.ndarray]:
    """Minus the log-probability of the clip's own ID under a logistic regression trained
    to tell the plant's IDs apart from their normal training clips (or sub-windows)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    groups = sorted(set(ids))
    own = np.array([groups.index(i) for i in ids])
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000)).fit(means[fit], own[fit])
    out = {"id-clf clip": -clf.predict_log_proba(means)[np.arange(len(means)), own]}
    windows = [segments(f, 31) for f in frames]
    rows = np.flatnonzero(fit)
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000)).fit(
        np.concatenate([windows[i] for i in rows]), np.concatenate([[own[i]] * len(windows[i]) for i in rows]))
    out["id-clf 31"] = np.array([-clf.predict_log_proba(w)[:, own[i]].mean() for i, w in enumerate(windows)])
    return out


def sparse_residuals(means: np.ndarray, fit: np.ndarray, ids: np.ndarray) -> dict[str, np.ndarray]:
    """For faults that move one or two bands (a new tone): each band's conditional residual
    given the other bands under the nearest ID's Gaussian, ``(P d)_i / sqrt(P_ii)`` (free
    once ``P d`` is computed for the distance), reduced by the largest squares instead of
    the sum that the Mahalanobis distance is."""
    from sklearn.covariance import LedoitWolf

    groups = sorted(set(ids))
    models = [LedoitWolf().fit(means[fit & (ids == g)]) for g in groups]
    d2 = np.array([maha(means - m.location_, m.precision_) for m in models])
    nearest = d2.argmin(0)
    r = np.empty_like(means)
    for j, m in enumerate(models):
        rows = nearest == j
        r[rows] = (means[rows] - m.location_) @ m.precision_ / np.sqrt(np.diag(m.precision_))
    top = -np.sort(-r ** 2, 1)
    return {"resid max": top[:, 0], "resid top8": top[:, :8].mean(1), "resid sum r^4": (r ** 4).sum(1)}


def cv_shrinkage(means: np.ndarray, frames: list[np.ndarray], fit: np.ndarray,
                 ids: np.ndarray) -> dict[str, np.ndarray]:
    """Each ID's sample covariance shrunk towards a target, the weight chosen by 5-fold
    cross-validated log-likelihood of its normal clips (no anomalies), instead of
    Ledoit-Wolf's Frobenius-optimal weight. Targets: the scaled identity (Ledoit-Wolf's
    own), the diagonal, and the within-clip covariance of the clip mean (from 31-frame
    sub-windows, many rows), scaled to the sample trace."""
    from sklearn.model_selection import KFold

    def within(i: int) -> np.ndarray:
        s = segments(frames[i], 31)
        return np.cov(s, rowvar=False) / len(s)

    def loglik(x: np.ndarray, mu: np.ndarray, c: np.ndarray) -> float:
        return -0.5 * (np.linalg.slogdet(c)[1] + maha(x - mu, np.linalg.inv(c)).mean())

    out: dict[str, np.ndarray] = {}
    groups = sorted(set(ids))
    for target in ("identity", "diagonal", "within-clip"):
        best = np.full(len(means), np.inf)
        for g in groups:
            rows = np.flatnonzero(fit & (ids == g))
            w = {i: within(i) for i in rows} if target == "within-clip" else {}

            def shrunk(sel: np.ndarray, a: float) -> np.ndarray:
                s = np.cov(means[sel], rowvar=False)
                t = (np.eye(len(s)) * np.trace(s) / len(s) if target == "identity" else
                     np.diag(np.diag(s)) if target == "diagonal" else
                     (lambda m: m * np.trace(s) / np.trace(m))(np.mean([w[i] for i in sel], 0)))
                return (1 - a) * s + a * t

            folds = list(KFold(5, shuffle=True, random_state=0).split(rows))
            a = max((0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9), key=lambda a: sum(
                loglik(means[rows[te]], means[rows[tr]].mean(0), shrunk(rows[tr], a)) for tr, te in folds))
            mu = means[rows].mean(0)
            best = np.minimum(best, maha(means - mu, np.linalg.inv(shrunk(rows, a))))
        out[f"cv shrink {target}"] = best
    return out


def fine_envelope_spectra(x: np.ndarray, sr: int, pool: int = 10) -> np.ndarray:
    """Periodic knocks and once-per-turn modulation (looseness, imbalance) as lines: the
    power envelope of four bands (200-1200, 1200-3000, 3000-7000 Hz and 50 Hz up),
    decimated to 400 Hz, its whole-clip spectrum (0.1 Hz resolution) from 1 to 100 Hz
    relative to the envelope's mean, max-pooled over ``pool`` bins so that a line keeps
    its height while the speed moves it from clip to clip; log. The coarse log-spaced
    modulation bins tried earlier averaged lines into the background's clanks."""
    spectrum = np.fft.rfft(x)
    f = np.fft.rfftfreq(len(x), 1 / sr)
    out = []
    for lo, hi in ((200, 1200), (1200, 3000), (3000, 7000), (50, sr / 2 + 1)):
        band = np.where((f >= lo) & (f < hi), spectrum, 0) * np.where(f > 0, 2.0, 1.0)
        power = np.abs(np.fft.ifft(band, len(x))) ** 2
        m = len(power) // 40
        env = power[:m * 40].reshape(m, 40).mean(1)
        p = np.abs(np.fft.rfft((env / env.mean() - 1) * np.hanning(m))) ** 2
        fe = np.fft.rfftfreq(m, 40 / sr)
        p = p[(fe >= 1) & (fe < 100)]
        out.append(np.log(p[:len(p) // pool * pool].reshape(-1, pool).max(1) + 1e-12))
    return np.concatenate(out)


def nearest_gaussian(features: np.ndarray, fit: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Each row's squared Mahalanobis distance to the nearest ID's Ledoit-Wolf Gaussian."""
    from sklearn.covariance import LedoitWolf

    best = np.full(len(features), np.inf)
    for g in sorted(set(ids)):
        lw = LedoitWolf().fit(features[fit & (ids == g)])
        best = np.minimum(best, maha(features - lw.location_, lw.precision_))
    return best


def pooled_covariance(means: np.ndarray, fit: np.ndarray, ids: np.ndarray) -> dict[str, np.ndarray]:
    """Each ID's own mean with the within-ID covariance pooled over the plant's IDs, and
    each ID's sample covariance blended with it."""
    from sklearn.covariance import LedoitWolf

    groups = sorted(set(ids))
    mu = {g: means[fit & (ids == g)].mean(0) for g in groups}
    pooled = LedoitWolf(assume_centered=True).fit(
        np.concatenate([means[fit & (ids == g)] - mu[g] for g in groups]))
    out = {"pooled cov": np.min([maha(means - mu[g], pooled.precision_) for g in groups], 0)}
    for a in (0.25, 0.5, 0.75):
        out[f"blend a={a}"] = np.min([maha(means - mu[g], np.linalg.inv(
            (1 - a) * np.cov(means[fit & (ids == g)], rowvar=False) + a * pooled.covariance_))
            for g in groups], 0)
    return out


def read_mono(path: Path) -> tuple[np.ndarray, int]:
    """The clip's first channel as float64, and its sample rate."""
    import soundfile as sf

    x, sr = sf.read(str(path), dtype="float64", always_2d=True)
    return x[:, 0], sr


def quietest_means(frames: np.ndarray, keeps: tuple[float, ...]) -> list[np.ndarray]:
    """For each fraction in ``keeps``, the mean of the clip's quietest frames (by mean
    log-mel): the background's clanks left out."""
    order = np.argsort(frames.mean(1))
    return [frames[order[:int(len(frames) * k)]].mean(0) for k in keeps]


def per_id_auc(labels: np.ndarray, scores: np.ndarray, ids: np.ndarray, rows: np.ndarray) -> list[float]:
    """AUC of ``rows`` per machine ID, IDs in sorted order."""
    from train import metrics

    return [metrics.auc(labels[rows & (ids == g)], scores[rows & (ids == g)]) for g in sorted(set(ids))]


def segment_kurtosis(x: np.ndarray, sr: int, segments: int = 10) -> np.ndarray:
    """Per bin of an 8 ms STFT (bins above DC), the log of the median over ``segments``
    equal parts of the clip of the spectral kurtosis E|X|^4 / (E|X|^2)^2: impulsive
    faults (bearing pops, cavitation crackle, looseness knocks) raise it, and the median
    keeps the background's few clanks out."""
    import scipy.signal as sps

    power = np.abs(sps.stft(x, sr, nperseg=128, noverlap=64, boundary=None)[2]) ** 2
    n = power.shape[1] // segments
    parts = power[1:, :n * segments].reshape(power.shape[0] - 1, segments, n)
    return np.log(np.median((parts ** 2).mean(2) / parts.mean(2) ** 2, 1))


def low_spectra(x: np.ndarray, sr: int, settings: tuple[tuple[int, float], ...]) -> list[np.ndarray]:
    """The clip's log Welch spectrum from 5 Hz to ``fmax`` for each ``(nperseg, fmax)``,
    averaged to at most 128 values: a frequency resolution the mel bands lack below 500 Hz
    (shaft orders, sub-harmonic combs of looseness)."""
    import scipy.signal as sps

    out = []
    for nperseg, fmax in settings:
        f, pxx = sps.welch(x, sr, nperseg=nperseg)
        low = np.log(pxx[(f > 5) & (f <= fmax)] + 1e-12)
        k = max(1, len(low) // 128)
        out.append(low[:len(low) // k * k].reshape(-1, k).mean(1))
    return out


def one_sided_shift(means: np.ndarray, fit: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """How much of the squared Mahalanobis distance to the nearest ID a non-negative shift
    of the log-mel mean explains, ``d2(x) - min_{s >= 0} d2(x - s)`` (non-negative least
    squares in the precision's Cholesky metric): a fault that adds sound can only raise
    the bands, while normal clips scatter both ways."""
    from scipy.optimize import nnls
    from sklearn.covariance import LedoitWolf

    fits = [LedoitWolf().fit(means[fit & (ids == g)]) for g in sorted(set(ids))]
    d2 = np.array([maha(means - lw.location_, lw.precision_) for lw in fits])
    out = np.empty(len(means))
    for n, k in enumerate(d2.argmin(0)):
        a = np.linalg.cholesky(fits[k].precision_).T
        out[n] = d2[k, n] - nnls(a, a @ (means[n] - fits[k].location_))[1] ** 2
    return out


def given_clank_share(means: np.ndarray, quiet: np.ndarray, fit: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """The clip mean's distance conditioned on what the loudest 10 % of its frames add in 4
    broad bands (the background's clanks): per ID, ``d2([x, z]) - d2(z)`` under one joint
    Gaussian (``d2(z)`` from the z block of the joint covariance), nearest ID. Columns are
    scaled to unit variance on the fitting clips first: z varies about 100 times less than
    the means, and Ledoit-Wolf's shrinkage towards a multiple of the identity would
    otherwise swamp it."""
    from sklearn.covariance import LedoitWolf

    z = (means - quiet).reshape(len(means), 4, -1).mean(2)
    joint = np.hstack([means, z])
    joint = (joint - joint[fit].mean(0)) / joint[fit].std(0)
    k = z.shape[1]
    out = np.full(len(means), np.inf)
    for g in sorted(set(ids)):
        j = LedoitWolf().fit(joint[fit & (ids == g)])
        dz = joint[:, -k:] - j.location_[-k:]
        out = np.minimum(out, maha(joint - j.location_, j.precision_)
                         - maha(dz, np.linalg.inv(j.covariance_[-k:, -k:])))
    return out


def oof_standardised(features: np.ndarray, fit: np.ndarray, ids: np.ndarray, folds: int = 5) -> np.ndarray:
    """The nearest-ID log distance standardised as the shipped ensemble standardises its
    parts (``train.detectors.out_of_fold_scores``): with the mean and SD of the fitting
    clips' log distances, each scored by Gaussians refitted without its fold (folds drawn
    within each ID, seed 0)."""
    rows = np.flatnonzero(fit)
    fold = np.zeros(len(features), int)
    rng = np.random.default_rng(0)
    for g in sorted(set(ids[rows])):
        mine = rows[ids[rows] == g]
        fold[mine] = rng.permutation(len(mine)) % folds
    held = np.concatenate([nearest_gaussian(features, fit & (fold != k), ids)[fit & (fold == k)]
                           for k in range(folds)])
    ref = np.log(held)
    return (np.log(nearest_gaussian(features, fit, ids)) - ref.mean()) / ref.std()


def trimmed_with_extra(name: str, out: Path, n: int) -> dict[str, tuple[float, float, float, float, str]]:
    """Per variant: mean and lowest per-ID AUC with the 13 test normals, then with ``n``
    more per ID, and which ID is the lowest with them."""
    from train.cache import FeatureCache
    from train.datasets import TEST, read_dataset

    clips = read_dataset(make_plant(name, out))
    fresh = extra_normal_clips(name, out, n)
    paths = [c.path for c in clips] + [p for _, p in fresh]
    cache = FeatureCache(out / "cache")
    cache.ensure(paths, jobs=2)
    keeps = (1.0, 0.95, 0.9, 0.8, 0.6)
    split = np.array([c.split for c in clips] + [TEST] * len(fresh))
    labels = np.array([int(c.is_anomaly) for c in clips] + [0] * len(fresh))
    ids = np.array([c.id for c in clips] + [i for i, _ in fresh])
    extra = np.arange(len(paths)) >= len(clips)
    fit, test = (split == "train") & (labels == 0), split == TEST
    # Bounds for the clipped mean: per band, the median of the training normals' frames
    # (all IDs) +- 2 robust standard deviations (IQR / 1.349). A frame-wise transform, so
    # it would still sum over the window as the heads do.
    frames = [np.asarray(cache.frames(p), np.float64) for p in paths]     # each clip read once
    train_frames = np.concatenate([frames[i] for i in np.flatnonzero(fit)])
    centre = np.median(train_frames, 0)
    spread = np.subtract(*np.percentile(train_frames, [75, 25], 0)) / 1.349
    lo, hi = centre - 2 * spread, centre + 2 * spread
    rows = []
    for f in frames:
        s = np.sort(f, 0)
        rows.append(quietest_means(f, keeps) + [np.median(f, 0), s[len(s) // 10:len(s) - len(s) // 10].mean(0),
                                                np.clip(f, lo, hi).mean(0)])
    scores = {v: nearest_gaussian(np.array([r[j] for r in rows]), fit, ids) for j, v in enumerate(
        [f"quietest {k:.0%}" for k in keeps] + ["median", "band-trim 10-90%", "clipped 2 sd"])}
    means = np.array([r[0] for r in rows])
    scores["fit train+val"] = nearest_gaussian(means, (split != TEST) & (labels == 0), ids)
    scores["one-sided shift"] = one_sided_shift(means, fit, ids)
    scores["given clank share"] = given_clank_share(means, np.array([r[2] for r in rows]), fit, ids)   # quietest 90 %
    lines = np.array([line_prominence(*read_mono(p)) for p in paths])
    z_mean, z_lines = oof_standardised(means, fit, ids), oof_standardised(lines, fit, ids)
    scores["lines"] = np.exp(z_lines)
    for w in (0.1, 0.2, 0.3):
        scores[f"{1 - w:.1f} mean+{w:.1f} lines oof"] = np.exp((1 - w) * z_mean + w * z_lines)
    out_rows = {}
    for v, sc in scores.items():
        a13, a_all = per_id_auc(labels, sc, ids, test & ~extra), per_id_auc(labels, sc, ids, test)
        out_rows[v] = (float(np.mean(a13)), float(min(a13)), float(np.mean(a_all)), float(min(a_all)),
                       sorted(set(ids))[int(np.argmin(a_all))])
    return out_rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--plants", nargs="+", default=["E", "F", "G"],
                    help="selection plants (E-J); default E F G")
    ap.add_argument("--extra-normals", type=int, default=0, metavar="N")
    args = ap.parse_args()
    if args.extra_normals:
        per_plant = {name: trimmed_with_extra(name, args.out, args.extra_normals) for name in args.plants}
        n = 13 + args.extra_normals
        print(f"{'':24s} 13 normals: mean / lowest ID   {n} normals: mean / lowest ID   "
              f"{n} normals: each plant's mean")
        for v in per_plant[args.plants[0]]:
            f = np.array([per_plant[p][v][:4] for p in args.plants])
            low = int(np.argmin(f[:, 3]))
            print(f"{v:24s} {f[:, 0].mean():.3f} / {f[:, 1].min():.3f}"
                  f"                {f[:, 2].mean():.3f} / {f[:, 3].min():.3f} "
                  f"({args.plants[low]} {per_plant[args.plants[low]][v][4]})  "
                  + " ".join(f"{p} {m:.3f}" for p, m in zip(args.plants, f[:, 2])))
        return
    table: dict[str, dict[str, tuple[float, float]]] = {}
    for name in args.plants:
        variants, labels, ids, test = plant_scores(name, args.out)
        for v, sc in variants.items():
            a = per_id_auc(labels, sc, ids, test)
            table.setdefault(v, {})[name] = (float(np.mean(a)), float(min(a)))
    for v, r in table.items():
        print(f"{v:20s}", " ".join(f"{p}: {m:.3f}/{lo:.3f}" for p, (m, lo) in r.items()),
              f"  mean {np.mean([m for m, _ in r.values()]):.3f}  lowest ID {min(lo for _, lo in r.values()):.3f}")


if __name__ == "__main__":
    main()
