"""``edge-ad fleet``: one model per machine type of a plant, as tasks on a Dask cluster.

The client (this process) lists the machine folders of DATA, fingerprints each one's data
and options, and submits three chained tasks per machine whose fingerprint changed:

1. ``features``: read the machine folder in its own layout and fill the feature cache
   (one machine's clips, one file at a time: a worker holds one clip's frames);
2. ``train``: :func:`train.pipeline.train_run` into ``FLEET/<m>/candidate/run``, exactly
   what ``edge-ad train DATA --machine <m>`` runs (a worker holds one machine's vectors);
3. ``export``: :func:`train.export.export_run` into ``FLEET/<m>/candidate/bundle`` (the
   int8 gate included), then the comparison with the current bundle and the promotion.

Tasks exchange only small dicts; the data, the cache and FLEET are files every worker
sees at the same path. A task whose worker dies is rescheduled by Dask on another
worker (``distributed.scheduler.allowed-failures``); every task writes atomically and
computes the same bytes again, so a retry is harmless.

Promotion swaps ``candidate/bundle`` with ``bundle`` in one ``renameat2(RENAME_EXCHANGE)``
(:func:`edge.atomic.exchange`; two renames where the file system cannot), so a board
watching ``bundle/`` sees the old bundle or the new one, complete. The bundle replaced goes
to ``history/`` (the last ``keep``). ``fleet.json`` is written last, atomically; a copy
goes to ``nights/<UTC stamp>.json``.

A candidate is kept out (``kept-previous``) when the int8 gate fails it, or when it scores
the new validation clips (normal recordings held out from training) worse than the
current bundle beyond noise: the whole 95 % paired-bootstrap interval of the mean change
of log clip score lies above ``log(1 + WORSE_MARGIN)``. ``force`` promotes a candidate
that passed the gate anyway.
"""
from __future__ import annotations

import dataclasses
import datetime
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edge.atomic import exchange, fsync_dir
from edge.errors import EXIT_BAD_INPUT, EXIT_FLEET_PARTIAL, EdgeAdError

from .detectors import DEFAULT_DETECTOR

log = logging.getLogger(__name__)

EXIT_SOME_FAILED = EXIT_FLEET_PARTIAL   # some machines failed; the others are done
SCHEMA = 1
FLEET_JSON = "fleet.json"
WORSE_MARGIN = 0.05         # 5 % higher mean reconstruction error on the validation clips
BOOTSTRAP = 2000
STATUSES = ("trained", "unchanged", "kept-previous", "failed")
# Folder names that mark DATA itself as one machine's folder (not a plant of several).
_MACHINE_LEVEL = re.compile(r"id_\d+|train|test")


class FleetError(EdgeAdError, RuntimeError):
    """A fleet that cannot start: no scheduler at the address, a FLEET taken, no machine."""

    exit_code = EXIT_BAD_INPUT


@dataclasses.dataclass(frozen=True)
class Options:
    """What a model depends on besides its data; part of the fingerprint."""

    seed: int = 0
    detector: str = DEFAULT_DETECTOR
    epochs: int | None = None       # None: the detector's recipe
    batch_size: int | None = None
    p: float = 0.1
    threads: int = 1
    formats: tuple[str, ...] = ("tflite", "onnx")
    min_correlation: float | None = None
    cache: str | None = None

    def model_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("cache")          # where features are kept does not change them
        d["formats"] = list(self.formats)
        return d


# --- client side: discovery, fingerprints ----------------------------------------------------

def discover(data: str | os.PathLike) -> dict[str, Path]:
    """``{machine name: folder}`` under DATA, sorted; linked folders are followed.

    Each non-hidden subfolder is one machine type, read later in its own layout. DATA
    that is itself one machine's folder (``id_XX/`` or ``train/``, ``test/`` inside) is
    a plant of one.
    """
    root = Path(data)
    if not root.is_dir():
        raise FleetError(f"{data}: not a folder (expected a plant folder with one folder per "
                         "machine type)")
    subs = sorted(p for p in root.iterdir() if not p.name.startswith(".") and p.is_dir())
    if any(_MACHINE_LEVEL.fullmatch(p.name) for p in subs):
        return {root.resolve().name: root}
    if not subs:
        raise FleetError(f"{data}: no machine folders (expected <machine>/ folders in MIMII, "
                         "seed or DCASE layout)")
    return {p.name: p for p in subs}


def fingerprint(folder: Path, options: Options) -> str:
    """sha256 over every audio file's relative path, size and mtime (what rsync compares)
    and the options a model depends on, plus the edge-ad version."""
    from edge import __version__
    from train.datasets import AUDIO_SUFFIXES

    h = hashlib.sha256()
    h.update(json.dumps({"options": options.model_dict(), "edge_ad": __version__},
                        sort_keys=True).encode())
    seen: set[tuple[int, int]] = set()
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        st = os.stat(dirpath)
        if (st.st_dev, st.st_ino) in seen:
            dirnames[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith(".") or not name.lower().endswith(AUDIO_SUFFIXES):
                continue
            path = os.path.join(dirpath, name)
            try:
                fst = os.stat(path)
                entry = f"{os.path.relpath(path, folder)}|{fst.st_size}|{fst.st_mtime_ns}"
            except OSError as e:      # a dangling link: the features task reports it
                entry = f"{os.path.relpath(path, folder)}|{e.strerror}"
            h.update(entry.encode() + b"\n")
    return h.hexdigest()


# --- worker side: the three tasks -----------------------------------------------------------

def _worker() -> str:
    try:
        from distributed import get_worker
        return str(get_worker().address)
    except (ImportError, ValueError):
        return f"pid:{os.getpid()}"


def _rss_mb() -> float:
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def task_features(data: str, machine: str, options: Options) -> dict[str, Any]:
    """Read the machine's folder and fill the feature cache, one clip at a time."""
    from train.cache import FeatureCache
    from train.datasets import read_dataset

    t0, c0 = time.perf_counter(), time.process_time()
    clips = read_dataset(data, machine=machine, seed=options.seed)
    FeatureCache(options.cache).ensure([c.path for c in clips], jobs=1, progress=False)
    return {"worker": _worker(), "seconds": time.perf_counter() - t0, "clips": len(clips),
            "cpu_s": time.process_time() - c0, "rss_mb": _rss_mb()}


def task_train(features: dict[str, Any], data: str, machine: str, out: str,
               options: Options) -> dict[str, Any]:
    """``edge-ad train DATA --machine M --out OUT --threads T --force`` (the cache filled)."""
    from train.detectors import recipe_for
    from train.pipeline import train_run

    t0, c0 = time.perf_counter(), time.process_time()
    recipe = recipe_for(options.detector, seed=options.seed, threads=options.threads,
                        epochs=options.epochs, batch_size=options.batch_size)
    run = train_run(data, Path(out) / "candidate" / "run", machine=machine, recipe=recipe,
                    detector=options.detector, p=options.p, cache_dir=options.cache, jobs=1,
                    force=True, progress=False)
    fpr = run.info["observed_fpr"]
    return {"worker": _worker(), "seconds": time.perf_counter() - t0, "rss_mb": _rss_mb(),
            "cpu_s": time.process_time() - c0, "cutoff": run.threshold.cutoff,
            "val_fpr": fpr.get("val"),
            "final_loss": run.info["history"][-1]}


def _val_scores(run: Any, bundle: Any) -> np.ndarray:
    """Scores of the run's normal validation clips through the bundle's default int8 model,
    as the board computes them."""
    from edge.scoring import clip_score

    backend, _ = bundle.load_backend(bundle.default_backend("int8"))
    return np.array([clip_score(x, backend.run(x)) for x in
                     (run.vectors(c) for c in run.clips_in("val") if not c.is_anomaly)])


def compare(new: np.ndarray, old: np.ndarray, *, seed: int = 0) -> dict[str, Any]:
    """Paired bootstrap of the mean change of log clip score (new against old) over the same
    clips; ``worse`` when the whole 95 % interval lies above ``log(1 + WORSE_MARGIN)``."""
    d = np.log(np.maximum(new, 1e-30)) - np.log(np.maximum(old, 1e-30))
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, len(d), size=(BOOTSTRAP, len(d)))].mean(axis=1)
    lo, hi = (float(v) for v in np.percentile(means, [2.5, 97.5]))
    return {"n": int(len(d)), "mean_log_change": float(d.mean()), "interval": [lo, hi],
            "margin": float(np.log1p(WORSE_MARGIN)), "worse": bool(lo > np.log1p(WORSE_MARGIN))}


def _swap_in(new: Path, target: Path) -> Path | None:
    """Put folder ``new`` at ``target`` atomically; returns where the old one now lies
    (``new``'s path) or None when there was none."""
    if target.exists():
        if not exchange(new, target):
            parked = new.with_name(new.name + ".old")
            os.rename(target, parked)
            os.rename(new, target)
            os.rename(parked, new)
        fsync_dir(target.parent)
        return new
    os.rename(new, target)
    fsync_dir(target.parent)
    return None


def _history_name(bundle: Path) -> str:
    manifest = bundle / "manifest.json"
    digest = hashlib.sha256(manifest.read_bytes()).hexdigest()[:12] if manifest.is_file() else "x"
    try:
        created = json.loads(manifest.read_text()).get("created", "")
    except (OSError, ValueError):
        created = ""
    stamp = re.sub(r"[^0-9T]", "", str(created))[:15] or "unknown"
    return f"{stamp}-{digest}"


def bundle_version(bundle: Path) -> str | None:
    """The sha256 of a bundle's manifest (it lists every file's sha256): its version."""
    manifest = bundle / "manifest.json"
    return hashlib.sha256(manifest.read_bytes()).hexdigest() if manifest.is_file() else None


def task_export(trained: dict[str, Any], out: str, options: Options, force: bool,
                keep: int) -> dict[str, Any]:
    """Export the candidate, judge it against the current bundle, promote it or keep the
    current one. Returns the machine's status and metrics."""
    from edge.bundle import load_bundle
    from edge.errors import BundleError, QuantizationGateError
    from train.export import export_run
    from train.export.gate import DEFAULTS as GATE
    from train.runs import load_run

    t0, c0 = time.perf_counter(), time.process_time()
    mdir = Path(out)
    cand_run, cand_bundle = mdir / "candidate" / "run", mdir / "candidate" / "bundle"
    current = mdir / "bundle"
    run = load_run(cand_run)
    have_current = False
    try:
        old = load_bundle(current) if current.exists() else None
        have_current = old is not None
    except BundleError as e:      # a damaged current bundle is replaced, not compared
        log.warning("%s: current bundle fails verification (%s); replacing it", current, e)
        old = None
    result: dict[str, Any] = {"worker": _worker(), "rss_mb": 0.0}
    try:
        summary = export_run(run, cand_bundle, formats=options.formats, jobs=1,
                             min_correlation=options.min_correlation
                             if options.min_correlation is not None else GATE["min_correlation"])
    except QuantizationGateError as e:
        result.update(status="kept-previous" if have_current else "failed",
                      reason=f"int8 gate: {e}", seconds=time.perf_counter() - t0,
                      cpu_s=time.process_time() - c0, rss_mb=_rss_mb())
        return result
    new = load_bundle(cand_bundle)
    int8 = new.default_backend("int8")
    name = next(n for n in new.models if n.endswith("int8.tflite") or n.endswith("int8.onnx"))
    info = summary["models"][name]
    metrics = {"model": name, "cutoff": info["cutoff"], "observed_fpr": info["observed_fpr"],
               "score_correlation_held_out": info["score_correlation_held_out"],
               "test_auc_mean": _mean(info["auc"].get("test", {})), "default_backend": int8}
    comparison = None
    if old is not None and any(not c.is_anomaly for c in run.clips_in("val")):
        comparison = compare(_val_scores(run, new), _val_scores(run, old), seed=options.seed)
    result["metrics"] = metrics
    result["comparison"] = comparison
    if comparison is not None and comparison["worse"] and not force:
        result.update(status="kept-previous",
                      reason=(f"candidate scores the validation clips worse: mean log score "
                              f"change {comparison['mean_log_change']:+.3f}, 95% interval "
                              f"[{comparison['interval'][0]:+.3f}, {comparison['interval'][1]:+.3f}] "
                              f"above +{comparison['margin']:.3f}"),
                      seconds=time.perf_counter() - t0, cpu_s=time.process_time() - c0,
                      rss_mb=_rss_mb())
        return result
    history = mdir / "history"
    history.mkdir(exist_ok=True)
    old_name = _history_name(current) if current.exists() else None
    replaced = _swap_in(cand_bundle, current)
    if replaced is not None:
        dest = history / old_name
        if dest.exists():
            shutil.rmtree(dest)
        os.rename(replaced, dest)
        fsync_dir(history)
    old_run = _swap_in(cand_run, mdir / "run")
    if old_run is not None:
        shutil.rmtree(old_run, ignore_errors=True)
    shutil.rmtree(mdir / "candidate", ignore_errors=True)
    for stale in sorted((p for p in history.iterdir() if p.is_dir()), key=lambda p: p.name)[:-keep or None]:
        shutil.rmtree(stale, ignore_errors=True)
    result.update(status="trained", bundle_sha256=bundle_version(current),
                  seconds=time.perf_counter() - t0, cpu_s=time.process_time() - c0,
                      rss_mb=_rss_mb())
    return result


def _mean(values: dict[str, Any]) -> float | None:
    vals = [v for v in values.values() if v is not None]
    return float(np.mean(vals)) if vals else None


# --- the client ---------------------------------------------------------------------------

def _write_json(path: Path, doc: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        f.write(json.dumps(doc, indent=1, allow_nan=False, default=str) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def connect(scheduler: str | None, *, workers: int, timeout: float = 10.0):
    """A ``distributed.Client``: to the scheduler at ``scheduler``, or to an embedded
    ``LocalCluster`` of ``workers`` one-thread processes. Returns ``(client, cluster)``."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise FleetError("edge-ad fleet needs Dask distributed; install the fleet extra: "
                         "pip install 'edge-ad[fleet]'") from None
    if scheduler:
        try:
            return Client(scheduler, timeout=timeout), None
        except (OSError, TimeoutError, ValueError) as e:
            raise FleetError(f"--scheduler {scheduler}: no Dask scheduler reachable there "
                             f"within {timeout:g} s ({type(e).__name__}); expected the address "
                             "of a running `dask scheduler`, e.g. tcp://10.0.0.5:8786") from None
    logging.getLogger("distributed").setLevel(logging.ERROR)   # its shutdown chatter
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                           dashboard_address=None, silence_logs=logging.CRITICAL)
    return Client(cluster), cluster


def run_fleet(data: str | os.PathLike, out: str | os.PathLike, *, scheduler: str | None = None,
              machines: list[str] | None = None, options: Options = Options(),
              force: bool = False, keep: int = 7, workers: int = 2, connect_timeout: float = 10.0,
              report: Callable[[str], None] = lambda line: None) -> dict[str, Any]:
    """Train and export every machine of DATA whose fingerprint changed; returns fleet.json.

    Raises:
        FleetError: no machines, an unknown ``--machines`` name, an unreachable scheduler,
            FLEET in use by another fleet.
    """
    out = Path(out).absolute()
    data_path = Path(data).absolute()
    found = discover(data_path)
    if machines:
        unknown = sorted(set(machines) - set(found))
        if unknown:
            raise FleetError(f"--machines {','.join(unknown)}: not in {data}; found "
                             f"{', '.join(found)}")
        found = {m: found[m] for m in found if m in machines}
    out.mkdir(parents=True, exist_ok=True)
    lock = open(out / ".fleet.lock", "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise FleetError(f"{out}: another edge-ad fleet is writing it (lock {out / '.fleet.lock'})") from None
    try:
        return _run_locked(data_path, out, found, scheduler=scheduler, options=options,
                           force=force, keep=keep, workers=workers,
                           connect_timeout=connect_timeout, report=report)
    finally:
        lock.close()


def _run_locked(data: Path, out: Path, found: dict[str, Path], *, scheduler: str | None,
                options: Options, force: bool, keep: int, workers: int, connect_timeout: float,
                report: Callable[[str], None]) -> dict[str, Any]:
    started = datetime.datetime.now(datetime.timezone.utc)
    t0 = time.perf_counter()
    previous: dict[str, Any] = {}
    if (out / FLEET_JSON).is_file():
        try:
            previous = json.loads((out / FLEET_JSON).read_text()).get("machines", {})
        except (OSError, ValueError, AttributeError):
            previous = {}
    entries: dict[str, dict[str, Any]] = {}
    todo: dict[str, str] = {}
    for name, folder in found.items():
        fp = fingerprint(folder, options)
        prev = previous.get(name, {})
        current = out / name / "bundle"
        if (not force and prev.get("data_fingerprint") == fp and prev.get("status") != "failed"
                and (current / "manifest.json").is_file()):
            entries[name] = {**prev, "status": "unchanged", "data_fingerprint": fp,
                             "bundle_sha256": bundle_version(current), "worker": None,
                             "timings": {}, "error": None}
        else:
            todo[name] = fp
    client = cluster = None
    address = scheduler or "embedded LocalCluster"
    if todo:
        client, cluster = connect(scheduler, workers=workers, timeout=connect_timeout)
        address = scheduler or f"embedded LocalCluster ({workers} workers)"
    try:
        finals = {}
        for name, fp in todo.items():
            mdir = out / name
            (mdir / "candidate").mkdir(parents=True, exist_ok=True)
            folder = str(data)
            f1 = client.submit(task_features, folder, name, options, key=f"features-{name}-{fp[:8]}",
                               pure=False)
            f2 = client.submit(task_train, f1, folder, name, str(mdir), options,
                               key=f"train-{name}-{fp[:8]}", pure=False)
            f3 = client.submit(task_export, f2, str(mdir), options, force, keep,
                               key=f"export-{name}-{fp[:8]}", pure=False)
            finals[name] = (f1, f2, f3)
        from distributed import wait
        if finals:
            wait([f for chain in finals.values() for f in chain])
        for name, (f1, f2, f3) in finals.items():
            stages = {"features": f1, "train": f2, "export": f3}
            entry: dict[str, Any] = {"data_fingerprint": todo[name], "worker": {}, "timings": {},
                                     "rss_mb": {}, "error": None, "metrics": None}
            for stage, fut in stages.items():
                if fut.status == "finished":
                    r = fut.result()
                    entry["worker"][stage] = r.get("worker")
                    entry["timings"][f"{stage}_s"] = r.get("seconds")
                    entry["timings"][f"{stage}_cpu_s"] = r.get("cpu_s")
                    entry["rss_mb"][stage] = r.get("rss_mb")
                    if stage == "train":
                        entry["train"] = {k: r[k] for k in ("cutoff", "val_fpr", "final_loss")}
                    if stage == "export":
                        entry.update({k: r.get(k) for k in ("status", "metrics", "comparison")})
                        entry["reason"] = r.get("reason")
                elif entry["error"] is None:
                    exc = fut.exception()
                    entry["status"] = "failed"
                    entry["error"] = f"{stage}: {exc}"
                    break
            prev = previous.get(name, {})
            current = out / name / "bundle"
            entry["bundle_sha256"] = bundle_version(current)
            if entry.get("status") == "kept-previous" and prev.get("metrics") and not entry.get("metrics"):
                entry["metrics"] = prev["metrics"]
            entries[name] = entry
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
    for name in found:
        e = entries[name]
        report(f"{name}: {e['status']}" + (f" ({e.get('error') or e.get('reason')})"
                                           if e.get("error") or e.get("reason") else "")
               + (f", bundle {e['bundle_sha256'][:12]}" if e.get("bundle_sha256") else ""))
    failed = sorted(n for n, e in entries.items() if e["status"] == "failed")
    finished = datetime.datetime.now(datetime.timezone.utc)
    doc = {
        "schema": SCHEMA, "data": str(data), "out": str(out), "scheduler": address,
        "started": started.isoformat(timespec="seconds"),
        "finished": finished.isoformat(timespec="seconds"),
        "wall_s": time.perf_counter() - t0, "options": options.model_dict(), "force": force,
        "counts": {s: sum(1 for e in entries.values() if e["status"] == s) for s in STATUSES},
        "exit_code": EXIT_SOME_FAILED if failed else 0,
        "machines": {n: entries[n] for n in sorted(entries)},
    }
    # Machines of earlier nights no longer asked for keep their entries.
    for name, prev in previous.items():
        doc["machines"].setdefault(name, prev)
    _write_json(out / FLEET_JSON, doc)
    nights = out / "nights"
    nights.mkdir(exist_ok=True)
    _write_json(nights / f"{started.strftime('%Y%m%dT%H%M%SZ')}.json", doc)
    return doc
