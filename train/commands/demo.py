"""``edge-ad demo``: the whole job end to end on a synthetic plant, each step a real command.

Every step runs the same ``edge-ad`` command a user would type (printed before it runs), so
the demo is also a check that the commands fit together.
"""
from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

from edge.errors import EdgeAdError

from train.detectors import DEFAULT_DETECTOR


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo", help="the whole job end to end on a synthetic plant",
        description="Generate a synthetic plant, train, evaluate, export the int8 bundle, run "
                    "the edge runtime on a recording with an anomalous stretch, and bench "
                    "float against int8. All outputs go to one folder.",
        epilog="example: edge-ad demo --out demo-out")
    p.add_argument("--out", default="demo-out", help="output folder (default demo-out)")
    p.add_argument("--quick", action="store_true",
                   help="a small plant and few epochs (CI smoke run; figures are not meaningful)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--force", action="store_true",
                   help="kept for old scripts: an earlier demo's folder is always replaced, and "
                   "any other non-empty folder always refused")


def _step(n: int, title: str, argv: list[str], *, log: Path) -> None:
    cmd = ["edge-ad", *argv]
    print(f"\n[{n}/6] {title}\n$ {shlex.join(cmd)}", flush=True)
    t0 = time.perf_counter()
    with log.open("a") as f:
        f.write(f"$ {shlex.join(cmd)}\n")
        f.flush()
        proc = subprocess.run([sys.executable, "-m", "edge", *argv], stderr=f)
    if proc.returncode != 0:
        raise EdgeAdError(f"step {n} ({title}) failed with exit code {proc.returncode}; "
                          f"see {log}")
    print(f"    ({time.perf_counter() - t0:.1f} s)", flush=True)


def make_recording(run_dir: Path, out: Path, *, normal_s: float = 30.0, anomaly_s: float = 20.0) -> dict:
    """Normal test clips, then abnormal clips of the same machine ID, then normal again:
    the recording ``edge-ad run`` listens to. Returns where the anomaly lies."""
    import numpy as np
    import soundfile as sf

    from edge import audio
    from train.runs import load_run

    from train import metrics

    run = load_run(run_dir)
    test = run.clips_in("test")
    score = {c.path: run.scores[c.to_dict(run.root)["path"]] for c in test}
    # The machine ID the model separates best: a demo of the runtime, not of the model's
    # weakest ID (the evaluate table shows those).
    ids = sorted({c.id for c in test if c.label == "anomaly"})
    machine_id = max(ids, key=lambda i: metrics.auc(
        [c.is_anomaly for c in test if c.id == i], [score[c.path] for c in test if c.id == i]))
    normal = [c for c in test if c.label == "normal" and c.id == machine_id]
    abnormal = sorted((c for c in test if c.label == "anomaly" and c.id == machine_id),
                      key=lambda c: -score[c.path])
    sr = run.spec.sample_rate

    def take(clips: list, seconds: float, start: int = 0) -> np.ndarray:
        parts, n, i = [], 0, start
        while n < seconds * sr:
            x = audio.load(clips[i % len(clips)].path, spec=run.spec)
            parts.append(x)
            n += len(x)
            i += 1
        return np.concatenate(parts)[: int(seconds * sr)]

    pieces = [take(normal, normal_s), take(abnormal, anomaly_s), take(normal, normal_s, start=3)]
    sf.write(out, np.concatenate(pieces), sr, subtype="PCM_16")
    return {"file": str(out), "machine_id": machine_id, "anomaly_start_s": normal_s,
            "anomaly_end_s": normal_s + anomaly_s, "duration_s": 2 * normal_s + anomaly_s}


def summarise_decisions(path: Path, where: dict) -> str:
    lines = [json.loads(s) for s in path.read_text().splitlines() if s.strip()]
    alarms = [d for d in lines if d.get("alarm")]
    t_key = "stream_seconds"
    out = [f"{len(lines)} decisions, {len(alarms)} with the alarm raised"]
    if alarms:
        out.append(f"alarm first raised at {alarms[0].get(t_key, '?')} s of audio, last at "
                   f"{alarms[-1].get(t_key, '?')} s (anomaly from {where['anomaly_start_s']:.0f} s "
                   f"to {where['anomaly_end_s']:.0f} s, window 10 s)")
    return "; ".join(out)


def run(args: argparse.Namespace) -> int:
    out = Path(args.out).resolve()
    if out.exists() and not out.is_dir():
        raise EdgeAdError(f"--out {out}: exists and is not a folder (expected a folder for the demo)")
    from edge.bundle import check_writable

    check_writable(out, expected="a writable folder for the demo (--out)")
    if out.exists() and any(out.iterdir()):
        # The demo replaces its own earlier output, so `make demo` can be run again and again;
        # a folder it did not write (no demo.log) is never deleted.
        if not (out / "demo.log").is_file():
            raise EdgeAdError(f"{out}: not empty and not an earlier demo folder (no demo.log); "
                              "refusing to delete it: choose another --out")
        import shutil
        print(f"edge-ad demo: replacing the earlier demo output in {out}", flush=True)
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    log = out / "demo.log"
    plant, run_dir, bundle = out / "plant", out / "run", out / "bundle"
    seed = str(args.seed)
    t0 = time.perf_counter()
    print(f"edge-ad demo: all outputs in {out} (step logs in {log.name})")
    synth = ["synth", str(plant), "--seed", seed]
    train = ["train", str(plant), "--out", str(run_dir), "--seed", seed]
    if args.quick:
        synth += ["--ids", "0,2", "--normal", "40", "--abnormal", "10"]
        train += ["--epochs", "8"]
    _step(1, "generate a synthetic plant (MIMII layout)", synth, log=log)
    _step(2, f"train the autoencoder and the default detector ({DEFAULT_DETECTOR}) on normal clips",
          train, log=log)
    _step(3, "evaluate: per-ID AUC/pAUC of every detector side by side, figures and report",
          ["evaluate", str(run_dir), "--detector", "all"], log=log)
    _step(4, "export int8 TFLite and ONNX, verified bundle",
          ["export", str(run_dir), "--out", str(bundle)], log=log)
    where = make_recording(run_dir, out / "recording.wav")
    decisions = out / "decisions.jsonl"
    _step(5, f"run the edge runtime on a recording with an anomalous stretch "
             f"({where['anomaly_start_s']:.0f}-{where['anomaly_end_s']:.0f} s of "
             f"{where['duration_s']:.0f} s, {where['machine_id']})",
          ["run", "--device", str(out / "recording.wav"), "--model", str(bundle), "--fast",
           "--json-out", str(decisions)], log=log)
    print("    " + summarise_decisions(decisions, where), flush=True)
    bench = ["bench", "--model", str(run_dir), "--model", str(bundle), "--plot",
             str(out / "bench.png"), "--out", str(out / "bench.json")]
    if args.quick:
        bench.append("--quick")
    _step(6, "bench float against int8", bench, log=log)
    print(f"\ndone in {time.perf_counter() - t0:.0f} s. Outputs in {out}:\n"
          f"  plant/  run/ (model, threshold, report/report.md)  bundle/  recording.wav  "
          f"decisions.jsonl  bench.json  bench.png", flush=True)
    return 0
