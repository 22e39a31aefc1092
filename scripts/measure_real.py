#!/usr/bin/env python3
"""A sanity check of the detectors on a folder of real recordings: a ``dcase2020-lite/``
(``MACHINE/test/{normal,anomaly}_id_NN_*.wav``) and a ``mimii-valve/`` folder (the fixtures
this project was developed beside; they are not in the repository, give their folder).

The fixtures hold 2 to 5 normal recordings per machine ID: far too few for an AUC that
means much, so this is a check that the detectors behave on real machines, not a figure
to rank them by. Protocol, per machine type and per normal recording R of an ID with at
least two (leave one recording out):

- every recording is cut into 2 s excerpts (5 per 10 s clip), channel 0;
- train (DCASE layout ``train/``): the excerpts of every other normal recording;
- test: R's excerpts against the excerpts of that ID's anomalous recordings;
- ``edge-ad train --detector seed`` and the default detector, ``evaluate --detector all``;
  the AUC of each fold, averaged over the folds of the machine type.

No excerpt of R is in training, so no recording is both learned and judged; excerpts of
one recording are not independent, which is why the figures are only a sanity check.

    .venv/bin/python scripts/measure_real.py FIXTURES --out /tmp/edge-ad-real
"""
from __future__ import annotations

import argparse
import collections
import json
import re
import shutil
from pathlib import Path

import numpy as np
import soundfile as sf

EXCERPT_S = 2.0


def recordings(fixtures: Path) -> dict[str, list[tuple[str, str, Path]]]:
    """``{machine: [(id, label, path)]}`` of the dcase2020-lite and mimii-valve fixtures."""
    out: dict[str, list[tuple[str, str, Path]]] = collections.defaultdict(list)
    for path in sorted((fixtures / "dcase2020-lite").glob("*/test/*.wav")):
        m = re.match(r"(normal|anomaly)_id_(\d+)_", path.name)
        out[path.parts[-3]].append((m[2], m[1], path))
    for path in sorted((fixtures / "mimii-valve").glob("*.wav")):
        label = "anomaly" if path.name.startswith("abnormal") else "normal"
        out["mimii-valve"].append(("00", label, path))
    return dict(out)


def excerpts(path: Path, dest: Path, stem: str) -> None:
    x, sr = sf.read(str(path), dtype="int16", always_2d=True)
    n = int(EXCERPT_S * sr)
    for k in range(len(x) // n):
        sf.write(str(dest / f"{stem}{k:02d}.wav"), x[k * n:(k + 1) * n, 0], sr, subtype="PCM_16")


def fold(machine: str, recs: list[tuple[str, str, Path]], held: int, out: Path, cache: Path) -> dict:
    from train.detectors import DEFAULT_DETECTOR, recipe_for
    from train.pipeline import compare_detectors, evaluate_run, train_run

    ident, _, held_path = recs[held]
    root = out / f"{machine}-fold{held}"
    shutil.rmtree(root, ignore_errors=True)
    data = root / "data" / machine
    (data / "train").mkdir(parents=True)
    (data / "test").mkdir()
    for i, (rid, label, path) in enumerate(recs):
        if label == "normal" and i != held:
            excerpts(path, data / "train", f"normal_id_{rid}_{i:04d}")
        elif i == held:
            excerpts(path, data / "test", f"normal_id_{rid}_{i:04d}")
        elif label == "anomaly" and rid == ident:
            excerpts(path, data / "test", f"anomaly_id_{rid}_{i:04d}")
    row: dict = {"machine": machine, "id": ident, "held_out": held_path.name}
    for det in ("seed", DEFAULT_DETECTOR):
        run = train_run(root / "data", root / f"run-{det}", recipe=recipe_for(det, seed=0, threads=1),
                        detector=det, cache_dir=cache, cutoff_on="train", progress=False, force=True)
        if det == "seed":
            row["seed"] = evaluate_run(run, baseline=False, progress=False)["table"]["overall"]["auc"]
        else:
            comp = compare_detectors(run, progress=False)
            row.update({name: t["overall"]["auc"] for name, t in comp["detectors"].items()})
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("/tmp/edge-ad-real"))
    ap.add_argument("fixtures", type=Path, help="folder holding dcase2020-lite/ and/or mimii-valve/")
    args = ap.parse_args()
    if not any((args.fixtures / d).is_dir() for d in ("dcase2020-lite", "mimii-valve")):
        ap.error(f"{args.fixtures}: expected a folder holding dcase2020-lite/ or mimii-valve/")
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for machine, recs in recordings(args.fixtures).items():
        normals = collections.Counter(rid for rid, label, _ in recs if label == "normal")
        for i, (rid, label, _) in enumerate(recs):
            has_anomaly = any(r == rid and lab == "anomaly" for r, lab, _ in recs)
            if label == "normal" and normals[rid] >= 2 and has_anomaly:
                try:
                    rows.append(fold(machine, recs, i, args.out, args.out / "cache"))
                except Exception as e:  # noqa: BLE001 - a fold the layout cannot train is reported
                    print(f"{machine} fold {i}: skipped ({e})", flush=True)
                    continue
                print(json.dumps(rows[-1]), flush=True)
    names = [k for k in rows[0] if k not in ("machine", "id", "held_out")]
    print("\nmachine       folds  " + "  ".join(f"{n:>9}" for n in names))
    for machine in dict.fromkeys(r["machine"] for r in rows):
        mine = [r for r in rows if r["machine"] == machine]
        print(f"{machine:<13} {len(mine):>5}  " + "  ".join(f"{np.mean([r[n] for r in mine]):9.3f}" for n in names))
    print(f"{'mean':<13} {len(rows):>5}  " + "  ".join(f"{np.mean([r[n] for r in rows]):9.3f}" for n in names))
    (args.out / "results.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
