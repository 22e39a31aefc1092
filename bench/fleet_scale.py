"""Fleet scale, measured (issue 11): wall time of ``edge-ad fleet`` with 1 and 2 workers on
the same plant, and how a worker's peak memory grows with one machine's data.

    python bench/fleet_scale.py --out /tmp/fleet-bench [--machines 4] [--epochs 30]

Each run starts from an empty feature cache and an empty FLEET, on an embedded
LocalCluster of one-thread workers, so every machine pays features, training and export.
The per-machine stage times and the workers' peak RSS come from fleet.json. Prints a
table and writes ``OUT/fleet_scale.json``. Figures hold only for the CPU measured.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path


def plant(root: Path, machines: int, normals: int, duration: float) -> Path:
    from train.synth import write_plant

    for m in range(machines):
        write_plant(root, machine=f"m{m:03d}", ids=(0, 2), n_normal=normals, n_abnormal=4,
                    seed=m, duration=duration, progress=False)
    return root


def fleet(data: Path, out: Path, cache: Path, workers: int, epochs: int) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(cache, ignore_errors=True)
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "edge", "-q", "fleet", str(data), "--out", str(out),
                        "--workers", str(workers), "--epochs", str(epochs), "--cache", str(cache),
                        "--json"], capture_output=True, timeout=3600,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    wall = time.perf_counter() - t0
    if r.returncode not in (0, 8):   # 8: a machine failed (e.g. its int8 gate); still timed
        raise SystemExit(f"fleet failed ({r.returncode}): {r.stderr.decode()[-2000:]}")
    doc = json.loads(r.stdout)
    doc["process_wall_s"] = wall
    return doc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--machines", type=int, default=4)
    ap.add_argument("--normals", type=int, default=16, help="normal clips per ID")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per clip")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--memory-normals", default="16,32,64",
                    help="normal clips per ID of the one-machine plants for the memory series")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = out / "plant"
    if not data.exists():
        plant(data, args.machines, args.normals, args.duration)
    result: dict = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "python": platform.python_version(), "machines": args.machines,
                    "normals_per_id": args.normals, "clip_s": args.duration, "epochs": args.epochs,
                    "scaling": {}, "memory": []}
    for workers in (1, 2):
        doc = fleet(data, out / f"fleet-{workers}", out / "cache", workers, args.epochs)
        stages = {s: [e["timings"][f"{s}_s"] for e in doc["machines"].values()
                      if f"{s}_s" in e["timings"]]
                  for s in ("features", "train", "export")}
        cpu = sum(v for e in doc["machines"].values() for k, v in e["timings"].items()
                  if k.endswith("_cpu_s") and v is not None)
        result["scaling"][workers] = {"wall_s": doc["wall_s"], "counts": doc["counts"],
                                      "task_cpu_s": cpu,
                                      "cpu_s_per_machine": cpu / len(doc["machines"]), "process_wall_s": doc["process_wall_s"],
                                      "stage_s_mean": {s: sum(v) / len(v) for s, v in stages.items()},
                                      "peak_rss_mb": max(max(e["rss_mb"].values())
                                                         for e in doc["machines"].values())}
    for n in [int(v) for v in args.memory_normals.split(",") if v.strip()]:
        one = out / f"one-{n}"
        if not one.exists():
            plant(one, 1, n, args.duration)
        doc = fleet(one, out / f"fleet-one-{n}", out / "cache-one", 1, args.epochs)
        e = next(iter(doc["machines"].values()))
        result["memory"].append({"normal_clips_per_id": n, "clips": 2 * (n + 4),
                                 "audio_s": 2 * (n + 4) * args.duration,
                                 "rss_after_features_train_mb": e["rss_mb"]["train"],
                                 "rss_after_export_mb": e["rss_mb"]["export"],
                                 "stage_s": e["timings"]})
    s1, s2 = result["scaling"][1], result["scaling"][2]
    result["speedup_2_workers"] = s1["wall_s"] / s2["wall_s"]
    (out / "fleet_scale.json").write_text(json.dumps(result, indent=1))
    print(f"{args.machines} machines, {2 * (args.normals + 4)} clips of {args.duration:g} s each, "
          f"{args.epochs} epochs; {result['cores']} cores")
    for w, s in result["scaling"].items():
        print(f"  {w} worker(s): fleet {s['wall_s']:.1f} s (process {s['process_wall_s']:.1f} s); per "
              f"machine features {s['stage_s_mean']['features']:.1f} s, train "
              f"{s['stage_s_mean']['train']:.1f} s, export {s['stage_s_mean']['export']:.1f} s; "
              f"peak worker RSS {s['peak_rss_mb']:.0f} MB; task CPU {s['task_cpu_s']:.1f} s "
              f"({s['cpu_s_per_machine']:.1f} s per machine)")
    print(f"  2 workers against 1: {result['speedup_2_workers']:.2f}x")
    for m in result["memory"]:
        print(f"  one machine, {m['clips']} clips ({m['audio_s']:.0f} s audio): worker RSS after "
              f"features+train {m['rss_after_features_train_mb']:.0f} MB, after export "
              f"{m['rss_after_export_mb']:.0f} MB")


if __name__ == "__main__":
    main()
