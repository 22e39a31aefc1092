#!/usr/bin/env python3
"""Which anomalies of a plant are heard at all: per machine ID, the ``mel-mean`` Gaussian's
AUC split by fault severity (thirds) and by fault family.

Uses a plant that ``scripts/measure_detectors.py`` generated under ``--out`` (MIMII or
DCASE layout); the fault and severity of each abnormal clip are drawn again from the
plant's seed exactly as ``edge-ad synth`` drew them. The Gaussian is fitted on the ID's
normal training clips (Ledoit-Wolf), as the detector does, and scored on the ID's test
clips.

Two more checks per ID. How typical its 13 test normals are: against the training normals,
each scored by a Gaussian fitted without it. And how far each fault moves its clip: the
clip and its fault-free twin (``make_clip(..., fault_free=True)``: the same machine and
background, no fault) differ by the fault alone; the squared Mahalanobis length of the
difference of their mel means, next to the spread of the normal clips' distances.

    .venv/bin/python scripts/severity_check.py --out /tmp/measure --plant D

``--ceiling N`` adds, per ID, how far the feature itself can go: the Gaussian fitted on N
fresh normal clips from the generator (``make_clip`` indices from 1000; the plant's own are
0-99, ``measure_detectors.py --extra-normals N``' from 100) instead of the ID's 87 training
clips, with Ledoit-Wolf and, once N is well above the 128 bands, the plain sample
covariance. The anomalies are scored against the ID's test normals and the extra normals
under ``--out`` when there are any. With N = 1000 the Gaussian's mean and covariance are as
good as they get; what the AUC still misses, no Gaussian on the log-mel mean can give (a
density of another shape on the same feature is not bounded by it). With 30 anomalies
per ID, one AUC is good to about +-0.04.

    .venv/bin/python scripts/severity_check.py --out /tmp/measure --plant D --ceiling 1000
"""
from __future__ import annotations

import argparse
import glob
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure_detectors import PLANTS  # noqa: E402


def main() -> None:
    from sklearn.covariance import EmpiricalCovariance, LedoitWolf
    from sklearn.metrics import roc_auc_score

    from edge import audio
    from edge.features import clip_features
    from edge.spec import DEFAULT_SPEC as spec
    from train.synth import FAULTS, _rng, machine_params, make_clip

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="measure_detectors.py's --out")
    ap.add_argument("--plant", required=True, choices=list(PLANTS))
    ap.add_argument("--ceiling", type=int, default=0, metavar="N",
                    help="also fit each ID's Gaussian on N fresh normal clips (the feature's ceiling)")
    args = ap.parse_args()
    if args.ceiling and args.ceiling < 100:
        sys.exit(f"severity_check: --ceiling {args.ceiling}: expected at least 100 fresh clips "
                 "(the point is more than an ID's 87 training clips)")
    o = PLANTS[args.plant]
    faults = tuple(o["faults"] or FAULTS)
    root = args.out / f"plant-{args.plant}" / ("dcase" if o["dcase"] else "") / o["machine"]
    if not root.is_dir():
        sys.exit(f"severity_check: {root}: no such plant folder; run measure_detectors.py "
                 f"--out {args.out} --plants {args.plant} first")

    def mel_means(paths: list[str]) -> np.ndarray:
        return np.array([clip_features(audio.load(p, spec=spec), spec=spec)[:, :spec.n_mels].mean(0)
                         for p in paths])

    for number in o["ids"]:
        ident = f"{number:02d}"
        if o["dcase"]:
            normals = sorted(glob.glob(f"{root}/train/normal_id_{ident}_*.wav"))
            held = sorted(glob.glob(f"{root}/test/normal_id_{ident}_*.wav"))
            anomalies = sorted(glob.glob(f"{root}/test/anomaly_id_{ident}_*.wav"))
        else:   # MIMII layout: the last 13 normal clips stand in for the test normals
            allnormal = sorted(glob.glob(f"{root}/id_{ident}/normal/*.wav"))
            normals, held = allnormal[:-13], allnormal[-13:]
            anomalies = sorted(glob.glob(f"{root}/id_{ident}/abnormal/*.wav"))
        f_train, f_held, f_anom = mel_means(normals), mel_means(held), mel_means(anomalies)
        lw = LedoitWolf().fit(f_train)

        sev, fam = [], []
        for k in range(len(anomalies)):   # make_clip's first draws, in its order
            rng = _rng(o["seed"], o["machine"], number, "abnormal", k)
            fam.append(faults[int(rng.integers(len(faults)))])
            sev.append(float(rng.uniform(0.0, 1.0)))
        sev, fam = np.array(sev), np.array(fam)
        normal_scores, anom_scores = distances(lw, f_held), distances(lw, f_anom)

        def auc(mask: np.ndarray) -> str:
            y = np.r_[np.zeros(len(normal_scores)), np.ones(int(mask.sum()))]
            return f"{roc_auc_score(y, np.r_[normal_scores, anom_scores[mask]]):.3f} (n={int(mask.sum())})"

        # The test normals against normals the Gaussian did not see either: each training
        # clip scored by a Gaussian fitted without it. 0.5 when the 13 test normals are a
        # typical draw; far from it, the ID's AUC says as much about them as about the faults.
        loo = []
        for i in range(len(f_train)):
            loo.append(float(distances(LedoitWolf().fit(np.delete(f_train, i, 0)), f_train[i:i + 1])[0]))
        loo = np.array(loo)

        def against_loo(s: np.ndarray) -> float:
            return roc_auc_score(np.r_[np.zeros(len(loo)), np.ones(len(s))], np.r_[loo, s])

        mp = machine_params(o["machine"], number, seed=o["seed"])
        print(f"id_{ident}: faults {mp.fault_db[0]:.1f} to {mp.fault_db[1]:.1f} dB relative to the "
              f"machine, machine at {o['snr_db'] + mp.snr_offset_db:.1f} dB SNR; mel-mean AUC "
              f"{auc(np.ones(len(sev), bool))}")
        print(f"  the {len(f_held)} test normals rank above {against_loo(normal_scores):.3f} of the "
              f"{len(loo)} training normals left out one at a time (0.5: a typical draw); the "
              f"anomalies against those: AUC {against_loo(anom_scores):.3f}")
        shift = []
        for k in range(len(anomalies)):
            kw = dict(abnormal=True, index=k, seed=o["seed"], snr_db=o["snr_db"], faults=faults)
            pair = [make_clip(o["machine"], number, fault_free=free, **kw)[0] for free in (False, True)]
            delta = np.subtract(*[clip_features(x, spec=spec)[:, :spec.n_mels].mean(0) for x in pair])
            shift.append(float(delta @ lw.precision_ @ delta))
        shift = np.array(shift)
        q1, q3 = np.percentile(normal_scores, [25, 75])
        print(f"  test normals' distance: median {np.median(normal_scores):.0f}, quartiles "
              f"{q1:.0f}-{q3:.0f}; each fault's own shift (its clip against its twin) below")
        for lo, hi in ((0.0, 1 / 3), (1 / 3, 2 / 3), (2 / 3, 1.01)):
            m = (sev >= lo) & (sev < hi)
            print(f"  severity {lo:.2f}-{min(hi, 1):.2f}: AUC {auc(m)}; shift median "
                  f"{np.median(shift[m]):.1f}, range {shift[m].min():.1f}-{shift[m].max():.1f}")
        print("  " + ", ".join(f"{f} {auc(fam == f)}" for f in sorted(set(fam))))
        if args.ceiling:
            extra = sorted(glob.glob(f"{args.out}/extra-normals-{args.plant}/id_{ident}/*.wav"))
            negatives = np.r_[f_held, mel_means(extra)] if extra else f_held
            fresh = fresh_means(args.plant, number, args.ceiling)
            sizes = sorted({n for n in (len(f_train), 200, 400, args.ceiling) if n <= args.ceiling})
            fits = [(f"Ledoit-Wolf on {n}", LedoitWolf().fit(fresh[:n])) for n in sizes]
            if args.ceiling >= 4 * spec.n_mels:
                fits.append((f"sample covariance of {args.ceiling}", EmpiricalCovariance().fit(fresh)))
            print(f"  ceiling, against {len(negatives)} normals (the test normals"
                  f"{' and the extra normals' if extra else ''}): Gaussian on its own training "
                  f"clips {ceiling_auc(LedoitWolf().fit(f_train), negatives, f_anom):.3f}; on fresh normals: "
                  + ", ".join(f"{name} {ceiling_auc(est, negatives, f_anom):.3f}" for name, est in fits))


def distances(est: object, f: np.ndarray) -> np.ndarray:
    """Squared Mahalanobis distances of the rows of ``f`` under a fitted sklearn covariance."""
    d = f - est.location_
    return np.einsum("ni,ij,nj->n", d, est.precision_, d)


def ceiling_auc(est: object, negatives: np.ndarray, positives: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(np.r_[np.zeros(len(negatives)), np.ones(len(positives))],
                               np.r_[distances(est, negatives), distances(est, positives)]))


def _fresh_mean(args: tuple[str, int, int]) -> np.ndarray:
    """One fresh normal clip's log-mel mean, through a WAV as the plant's clips go."""
    import os
    import tempfile

    import soundfile as sf

    from edge import audio
    from edge.features import clip_features
    from edge.spec import DEFAULT_SPEC as spec
    from train.synth import FAULTS, SAMPLE_RATE, make_clip

    plant, number, index = args
    o = PLANTS[plant]
    x, _ = make_clip(o["machine"], number, abnormal=False, index=index, seed=o["seed"],
                     snr_db=o["snr_db"], faults=tuple(o["faults"] or FAULTS))
    fd, path = tempfile.mkstemp(suffix=".wav")
    os.close(fd)
    try:
        sf.write(path, x, SAMPLE_RATE, subtype="PCM_16")
        return clip_features(audio.load(path, spec=spec), spec=spec)[:, :spec.n_mels].mean(0)
    finally:
        os.unlink(path)


def fresh_means(plant: str, number: int, n: int) -> np.ndarray:
    """Log-mel means of ``n`` fresh normal clips of one ID (indices 1000 ..), two processes."""
    import concurrent.futures as cf
    import multiprocessing

    todo = [(plant, number, 1000 + k) for k in range(n)]
    with cf.ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        return np.array(list(pool.map(_fresh_mean, todo, chunksize=16)))


if __name__ == "__main__":
    main()
