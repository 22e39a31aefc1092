#!/usr/bin/env python3
"""Measure every detector on synthetic plants the defaults were not chosen on.

For each plant and training seed:

1. ``edge-ad synth`` the plant (its own seed, machine, SNR and fault families);
2. train the seed's detector and the default detector (``edge-ad train`` defaults);
3. ``evaluate --detector all`` on the default run's network (every head side by side,
   float, torch) and the seed run's own table;
4. export the default run (int8 TFLite + the C network, the gate) and score every test clip
   through the bundle *as the board scores it* (``edge-ad score``'s path: streamed front
   end, the default int8 backend, the bundle's head), per-ID AUC.

The default detector was chosen on the dev plant (``edge-ad synth`` seed 0: fan, 6 dB, the
four default fault families) only; plants A-D differ in seed, machine, SNR, fault families
and layout, and their figures are what docs/detectors.md reports.

    .venv/bin/python scripts/measure_detectors.py --out /tmp/measure --plants A B C D --seeds 0 1

A plant's test split holds 13 normal clips per ID, so one ID's AUC is a noisy figure (its
standard error is about 0.07), and the lowest ID of 28 is pulled down by the unluckiest 13.
``--extra-normals N`` (after a measurement, on the bundles it left under OUT) makes N more
normal clips per ID from the same plant generator (clip indices past the plant's own, never
trained or validated on), scores them through each bundle as the board does, and gives the
per-ID AUC against the 13 test normals and against 13 + N:

    .venv/bin/python scripts/measure_detectors.py --out /tmp/measure --extra-normals 60
"""
from __future__ import annotations

import argparse
import json
import logging
import shutil
import time
from pathlib import Path

import numpy as np

from train.synth import FAULTS, HELD_OUT_FAULTS

#: every fault family the generator has, in its order (a plant draws each clip's from these)
ALL_FAULTS = FAULTS + HELD_OUT_FAULTS

PLANTS = {
    # name: synth options, layout
    "dev": dict(machine="fan", ids=(0, 2, 4, 6), seed=0, snr_db=6.0, faults=None, dcase=False),
    "A": dict(machine="fan", ids=(1, 3, 5, 7), seed=11, snr_db=6.0, faults=None, dcase=False),
    "B": dict(machine="pump", ids=(0, 2, 4), seed=12, snr_db=0.0, faults=None, dcase=False),
    "C": dict(machine="fan", ids=(0, 2, 4, 6), seed=13, snr_db=6.0,
              faults=HELD_OUT_FAULTS, dcase=False),
    "D": dict(machine="slider", ids=(0, 2, 4), seed=14, snr_db=-3.0,
              faults=ALL_FAULTS, dcase=True),
    # Selection plants: scripts/select_detector.py chooses among head variants on these, so
    # that A-D stay plants nobody tuned on.
    "E": dict(machine="valve", ids=(0, 2, 4, 6), seed=21, snr_db=0.0,
              faults=ALL_FAULTS, dcase=False),
    "F": dict(machine="slider", ids=(1, 3, 5), seed=22, snr_db=-3.0, faults=None, dcase=True),
    "G": dict(machine="fan", ids=(0, 2, 4, 6), seed=23, snr_db=-6.0,
              faults=ALL_FAULTS, dcase=False),
    # More selection plants (2026-12-07, fourth session), to tell a small gain from the
    # spread between plants: a pump, a valve at -6 dB in DCASE layout, a slider at 0 dB.
    "H": dict(machine="pump", ids=(1, 3, 5), seed=31, snr_db=-3.0,
              faults=ALL_FAULTS, dcase=False),
    "I": dict(machine="valve", ids=(1, 3, 5), seed=32, snr_db=-6.0,
              faults=ALL_FAULTS, dcase=True),
    "J": dict(machine="slider", ids=(0, 2, 4, 6), seed=33, snr_db=0.0,
              faults=ALL_FAULTS, dcase=False),
}


DESCRIBE = {
    "A": "fan IDs 1,3,5,7, plant seed 11, 6 dB",
    "B": "pump IDs 0,2,4, 0 dB",
    "C": "fan, 6 dB, only looseness + cavitation (held-out faults)",
    "D": "slider IDs 0,2,4, -3 dB, all six faults, DCASE layout",
}


def make_plant(name: str, out: Path) -> Path:
    from train.synth import FAULTS, copy_as_dcase, write_plant

    o = PLANTS[name]
    root = out / f"plant-{name}"
    data = root / "dcase" if o["dcase"] else root
    if (root / "ready").is_file():
        return data
    shutil.rmtree(root, ignore_errors=True)
    raw = root / "mimii" if o["dcase"] else root
    write_plant(raw, machine=o["machine"], ids=o["ids"], seed=o["seed"], snr_db=o["snr_db"],
                faults=o["faults"] or FAULTS, jobs=2, progress=False)
    if o["dcase"]:
        copy_as_dcase(raw / o["machine"], root / "dcase" / o["machine"], test_normals=13)
        shutil.rmtree(raw)
    (root / "ready").write_text("")
    return data


def board_aucs(bundle: Path, run: object) -> dict[str, float]:
    """Per-ID AUC of the test clips scored through the bundle as ``edge-ad score`` does."""
    from edge.commands.score import score_file
    from edge.detector import open_detector
    from train import metrics

    det = open_detector(bundle)
    test = run.clips_in("test")
    scores = np.array([score_file(str(c.path), det, spec=det.spec) for c in test])
    labels = np.array([int(c.is_anomaly) for c in test])
    ids = np.array([c.id for c in test])
    out = {i: metrics.auc(labels[ids == i], scores[ids == i]) for i in sorted(set(ids))}
    out["backend"] = det.backend.name
    return out


def measure(name: str, seed: int, out: Path, *, cache: Path) -> dict:
    from train.detectors import DEFAULT_DETECTOR, recipe_for
    from train.export.pipeline import export_run
    from train.pipeline import compare_detectors, evaluate_run, train_run

    data = make_plant(name, out)
    row: dict = {"plant": name, **{f"plant_{k}": v for k, v in PLANTS[name].items()}, "seed": seed}
    t0 = time.time()
    runs = {}
    for det in ("seed", DEFAULT_DETECTOR):
        runs[det] = train_run(data, out / f"run-{name}-{seed}-{det}", recipe=recipe_for(det, seed=seed, threads=1),
                              detector=det, cache_dir=cache, force=True, progress=False)
    row["seed_table"] = {i: r["auc"] for i, r in evaluate_run(runs["seed"], baseline=False,
                                                               progress=False)["table"]["per_id"].items()}
    comp = compare_detectors(runs[DEFAULT_DETECTOR], progress=False)
    row["float"] = {d: {i: r["auc"] for i, r in t["per_id"].items()} for d, t in comp["detectors"].items()}
    bundle = out / f"bundle-{name}-{seed}"
    summary = export_run(runs[DEFAULT_DETECTOR], bundle, formats=("tflite",))
    row["gate"] = {k: summary["gate"][k] for k in ("passed", "agreement") if k in summary["gate"]}
    row["board"] = board_aucs(bundle, runs[DEFAULT_DETECTOR])
    row["seconds"] = time.time() - t0
    return row


def extra_normals(name: str, seed: int, out: Path, n: int) -> dict:
    """Per-ID board AUC of bundle ``name``/``seed`` against its 13 test normals and against
    those plus ``n`` fresh normal clips per ID (``make_clip`` indices 100 .. 100+n-1; the
    plant's own clips are 0-99)."""
    from edge.commands.score import score_file
    from edge.detector import open_detector
    from train import metrics
    from train.detectors import DEFAULT_DETECTOR
    from train.runs import load_run

    o = PLANTS[name]
    det = open_detector(out / f"bundle-{name}-{seed}")
    run = load_run(out / f"run-{name}-{seed}-{DEFAULT_DETECTOR}")
    test = run.clips_in("test")
    scores = np.array([score_file(str(c.path), det, spec=det.spec) for c in test])
    labels = np.array([int(c.is_anomaly) for c in test])
    ids = np.array([c.id for c in test])
    row: dict = {"plant": name, "seed": seed, "extra": n, "test13": {}, "extended": {}, "normals": {}}
    fresh = extra_normal_clips(name, out, n)
    for number in o["ids"]:
        ident = f"id_{number:02d}"
        extra = [score_file(str(path), det, spec=det.spec) for i, path in fresh if i == ident]
        mine = ids == ident
        row["test13"][ident] = metrics.auc(labels[mine], scores[mine])
        row["extended"][ident] = metrics.auc(np.r_[labels[mine], np.zeros(n, int)], np.r_[scores[mine], extra])
        row["normals"][ident] = int((labels[mine] == 0).sum()) + n
    return row


def extra_normal_clips(name: str, out: Path, n: int) -> list[tuple[str, Path]]:
    """``n`` fresh normal clips per machine ID of plant ``name`` (``make_clip`` indices
    100 .. 100+n-1; the plant's own clips are 0-99), written once under
    ``out/extra-normals-{name}`` (outside the plant: its reader takes every WAV), as
    ``(id, path)`` pairs."""
    import soundfile as sf

    from train.synth import FAULTS, SAMPLE_RATE, make_clip

    o = PLANTS[name]
    clips = []
    for number in o["ids"]:
        ident = f"id_{number:02d}"
        for k in range(100, 100 + n):
            path = out / f"extra-normals-{name}" / ident / f"{k:08d}.wav"
            if not path.is_file():
                x, _ = make_clip(o["machine"], number, abnormal=False, index=k, seed=o["seed"],
                                 snr_db=o["snr_db"], faults=tuple(o["faults"] or FAULTS))
                path.parent.mkdir(parents=True, exist_ok=True)
                sf.write(str(path), x, SAMPLE_RATE, subtype="PCM_16")
            clips.append((ident, path))
    return clips


def table(results: Path) -> str:
    """The markdown table of docs/detectors.md from ``results.jsonl`` (one row per plant
    and seed, then the mean and SD over rows; per-ID AUC averaged over IDs)."""
    rows = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
    if not rows:
        raise SystemExit(f"measure_detectors: {results} holds no measurement yet")
    names = list(rows[0]["float"])
    cols = ["seed", *names, "board"]
    extended = extended_rows(results.parent / "extra-normals.jsonl")
    head = ("| plant | differs from the dev plant | train seed | seed | "
            + " | ".join(f"{n} (float)" if n == "ensemble" else n for n in names)
            + " | **ensemble, int8 bundle, board** | lowest ID (board) |")
    if extended:
        n_ext = max(max(e["normals"].values()) for e in extended.values())
        head += f" board, {n_ext} test normals per ID: mean | lowest ID |"
    out = [head, "|" + "---|" * (len(cols) + 4 + 2 * bool(extended))]
    per: dict[str, list[float]] = {c: [] for c in cols}
    lows = []
    ext_means: list[float] = []
    ext_lows: list[float] = []
    for r in rows:
        vals = {"seed": r["seed_table"], **r["float"],
                "board": {k: v for k, v in r["board"].items() if k != "backend"}}
        means = {c: float(np.mean(list(vals[c].values()))) for c in cols}
        low_id = min(vals["board"], key=vals["board"].get)
        lows.append(vals["board"][low_id])
        for c in cols:
            per[c].append(means[c])
        out.append(f"| {r['plant']} | {DESCRIBE.get(r['plant'], '')} | {r['seed']} | "
                   + " | ".join(f"{means[c]:.3f}" for c in cols[:-1])
                   + f" | **{means['board']:.3f}** | {vals['board'][low_id]:.3f} ({low_id}) |")
        if extended:
            e = extended.get((r["plant"], r["seed"]))
            if e is None:
                out[-1] += " | |"
            else:
                e_low = min(e["extended"], key=e["extended"].get)
                ext_means.append(float(np.mean(list(e["extended"].values()))))
                ext_lows.append(e["extended"][e_low])
                out[-1] += f" {ext_means[-1]:.3f} | {ext_lows[-1]:.3f} ({e_low}) |"
    out.append(f"| **mean ± SD, {len(rows)} runs** | | | "
               + " | ".join(f"{np.mean(per[c]):.3f} ± {np.std(per[c], ddof=1):.3f}" for c in cols[:-1])
               + f" | **{np.mean(per['board']):.3f} ± {np.std(per['board'], ddof=1):.3f}** | {min(lows):.3f} |")
    if extended:
        out[-1] += (f" {np.mean(ext_means):.3f} ± {np.std(ext_means, ddof=1):.3f} | {min(ext_lows):.3f} |"
                    if len(ext_means) > 1 else " | |")
    return "\n".join(out)


def extended_rows(path: Path) -> dict[tuple[str, int], dict]:
    """The last ``--extra-normals`` row of each plant and seed in ``path`` (none if absent)."""
    if not path.is_file():
        return {}
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {(r["plant"], r["seed"]): r for r in rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("/tmp/edge-ad-measure"))
    ap.add_argument("--plants", nargs="+", default=["A", "B", "C", "D"], choices=list(PLANTS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    ap.add_argument("--extra-normals", type=int, metavar="N", default=0,
                    help="score N more normal clips per ID through the bundles already under OUT "
                         "and print each ID's AUC against 13 and 13 + N test normals")
    ap.add_argument("--table", action="store_true",
                    help="print the markdown table of OUT/results.jsonl and measure nothing")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    args.out.mkdir(parents=True, exist_ok=True)
    results = args.out / "results.jsonl"
    if args.table:
        print(table(results))
        return
    if args.extra_normals > 0:
        with (args.out / "extra-normals.jsonl").open("a") as f:
            for name in args.plants:
                for seed in args.seeds:
                    row = extra_normals(name, seed, args.out, args.extra_normals)
                    f.write(json.dumps(row) + "\n")
                    print(f"plant {name} seed {seed}: " + ", ".join(
                        f"{i} {row['test13'][i]:.3f} -> {row['extended'][i]:.3f}" for i in row["test13"])
                        + f"; mean {np.mean(list(row['test13'].values())):.3f} -> "
                          f"{np.mean(list(row['extended'].values())):.3f} "
                          f"({max(row['normals'].values())} test normals per ID)", flush=True)
        return
    for name in args.plants:
        for seed in args.seeds:
            row = measure(name, seed, args.out, cache=args.out / "cache")
            with results.open("a") as f:
                f.write(json.dumps(row, default=str) + "\n")
            b = {k: v for k, v in row["board"].items() if k != "backend"}
            print(f"plant {name} seed {seed}: board ({row['board']['backend']}) mean AUC "
                  f"{np.mean(list(b.values())):.4f} min {min(b.values()):.4f}; seed detector "
                  f"{np.mean(list(row['seed_table'].values())):.4f}; "
                  + ", ".join(f"{d} {np.mean(list(v.values())):.4f}" for d, v in row["float"].items())
                  + f" ({row['seconds']:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
