#!/usr/bin/env python3
"""Which anomalies of a plant are heard at all: per machine ID, the ``mel-mean`` Gaussian's
AUC split by fault severity (thirds) and by fault family.

Uses a plant that ``scripts/measure_detectors.py`` generated under ``--out`` (MIMII or
DCASE layout); the fault and severity of each abnormal clip are drawn again from the
plant's seed exactly as ``edge-ad synth`` drew them. The Gaussian is fitted on the ID's
normal training clips (Ledoit-Wolf), as the detector does, and scored on the ID's test
clips.

    .venv/bin/python scripts/severity_check.py --out /tmp/measure --plant D
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
    from sklearn.covariance import LedoitWolf
    from sklearn.metrics import roc_auc_score

    from edge import audio
    from edge.features import clip_features
    from edge.spec import DEFAULT_SPEC as spec
    from train.synth import FAULTS, _rng, machine_params

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="measure_detectors.py's --out")
    ap.add_argument("--plant", required=True, choices=list(PLANTS))
    args = ap.parse_args()
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

        def dist(f: np.ndarray) -> np.ndarray:
            d = f - lw.location_
            return np.einsum("ni,ij,nj->n", d, lw.precision_, d)

        sev, fam = [], []
        for k in range(len(anomalies)):   # make_clip's first draws, in its order
            rng = _rng(o["seed"], o["machine"], number, "abnormal", k)
            fam.append(faults[int(rng.integers(len(faults)))])
            sev.append(float(rng.uniform(0.0, 1.0)))
        sev, fam = np.array(sev), np.array(fam)
        normal_scores, anom_scores = dist(f_held), dist(f_anom)

        def auc(mask: np.ndarray) -> str:
            y = np.r_[np.zeros(len(normal_scores)), np.ones(int(mask.sum()))]
            return f"{roc_auc_score(y, np.r_[normal_scores, anom_scores[mask]]):.3f} (n={int(mask.sum())})"

        mp = machine_params(o["machine"], number, seed=o["seed"])
        print(f"id_{ident}: faults {mp.fault_db[0]:.1f} to {mp.fault_db[1]:.1f} dB relative to the "
              f"machine, machine at {o['snr_db'] + mp.snr_offset_db:.1f} dB SNR; mel-mean AUC "
              f"{auc(np.ones(len(sev), bool))}")
        for lo, hi in ((0.0, 1 / 3), (1 / 3, 2 / 3), (2 / 3, 1.01)):
            print(f"  severity {lo:.2f}-{min(hi, 1):.2f}: AUC {auc((sev >= lo) & (sev < hi))}")
        print("  " + ", ".join(f"{f} {auc(fam == f)}" for f in sorted(set(fam))))


if __name__ == "__main__":
    main()
