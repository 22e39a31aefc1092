"""``edge-ad fleet`` on a real Dask cluster: a ``dask scheduler`` and two ``dask worker``
processes on 127.0.0.1 (issue 11).

A plant mixes a MIMII-layout machine (fan), a DCASE-layout machine reached through a
symbolic link (pump) and a machine with bad data (valve). The fleet's bundles are compared
byte for byte with ``edge-ad train`` + ``edge-ad export`` of each machine, a second run
retrains nothing, a failing int8 gate keeps the current bundle, and a worker killed while
it trains does not fail the fleet.
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from edge.errors import EXIT_BAD_INPUT, EXIT_FLEET_PARTIAL
from runtime_support import edge_ad, edge_env
from test_mqtt_alerts import free_port, wait_for
from ci_env import in_ci

distributed = pytest.importorskip("distributed") if not in_ci() \
    else __import__("distributed")

EPOCHS = "2"
FLEET_ARGS = ["--epochs", EPOCHS, "--formats", "tflite"]
DASK = Path(sys.executable).with_name("dask")
FIRST_FILES: dict[str, dict[str, str]] = {}   # the first fleet's bundles, before later runs change them


class Cluster:
    """``dask scheduler`` + ``dask worker`` processes, each in its own process group."""

    def __init__(self, tmp: Path, env: dict[str, str]):
        self.port = free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.env, self.tmp = env, tmp
        self.procs: dict[str, subprocess.Popen] = {}
        self._start("scheduler", [str(DASK), "scheduler", "--host", "127.0.0.1", "--port",
                                  str(self.port), "--no-dashboard"])
        for name in ("w0", "w1"):
            self.start_worker(name)
        self.wait_workers(2)

    def _start(self, name: str, cmd: list[str]) -> None:
        log = open(self.tmp / f"{name}.log", "ab")
        self.procs[name] = subprocess.Popen(cmd, env=self.env, stdout=log, stderr=log,
                                            start_new_session=True)

    def start_worker(self, name: str) -> None:
        # No nanny: the worker is one process, so killing it kills the worker.
        self._start(name, [str(DASK), "worker", self.address, "--name", name, "--nthreads", "1",
                           "--no-nanny", "--no-dashboard", "--host", "127.0.0.1"])

    def workers(self) -> dict[str, str]:
        """``{name: address}`` of the workers the scheduler knows."""
        with distributed.Client(self.address, timeout=10) as c:
            return {w["name"]: a for a, w in c.scheduler_info(n_workers=-1)["workers"].items()}

    def wait_workers(self, n: int) -> None:
        wait_for(lambda: len(self.workers()) >= n, 60, f"{n} Dask workers")

    def kill(self, name: str) -> None:
        proc = self.procs.pop(name)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    def close(self) -> None:
        for name in [n for n in self.procs if n != "scheduler"] + ["scheduler"]:
            proc = self.procs.pop(name, None)
            if proc is None:
                continue
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
            except ProcessLookupError:
                pass


@pytest.fixture(scope="module")
def plant(tmp_path_factory):
    """fan in MIMII layout, pump in DCASE 2020 layout behind a symlink, valve broken."""
    from train.synth import copy_as_dcase, write_plant

    tmp = tmp_path_factory.mktemp("fleet-plant")
    write_plant(tmp / "src", machine="fan", ids=(0, 2), n_normal=16, n_abnormal=4, seed=0,
                duration=2.0, progress=False)
    write_plant(tmp / "src", machine="pump", ids=(0, 2), n_normal=24, n_abnormal=4, seed=1,
                duration=2.0, progress=False)
    root = tmp / "plant"
    root.mkdir()
    (tmp / "src" / "fan").rename(root / "fan")
    copy_as_dcase(tmp / "src" / "pump", tmp / "elsewhere" / "pump")
    (root / "pump").symlink_to(tmp / "elsewhere" / "pump", target_is_directory=True)
    bad = root / "valve" / "id_00" / "normal"
    bad.mkdir(parents=True)
    (bad / "00000000.wav").write_bytes(b"RIFF not a recording")
    return root


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    cache = tmp_path_factory.mktemp("fleet-cache")
    return edge_env(EDGE_AD_CACHE=str(cache), OMP_NUM_THREADS="1")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, env):
    c = Cluster(tmp_path_factory.mktemp("dask"), env)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture(scope="module")
def first(plant, cluster, env, tmp_path_factory):
    out = tmp_path_factory.mktemp("fleet") / "fleet"
    r = edge_ad("fleet", str(plant), "--out", str(out), "--scheduler", cluster.address,
                *FLEET_ARGS, env=env, timeout=300)
    FIRST_FILES.update({m: _model_files(out / m / "bundle") for m in ("fan", "pump")
                        if (out / m / "bundle").is_dir()})
    return out, r


def _model_files(bundle: Path) -> dict[str, str]:
    """sha256 of every file but the manifest (whose stamp and source path differ)."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(bundle.iterdir()) if p.name != "manifest.json"}


def test_fleet_bundles_equal_train_and_export(first, plant, env, tmp_path):
    out, r = first
    assert r.returncode == EXIT_FLEET_PARTIAL, r.stderr.decode()[-3000:]
    doc = json.loads((out / "fleet.json").read_text())
    assert {m: e["status"] for m, e in doc["machines"].items()} == \
        {"fan": "trained", "pump": "trained", "valve": "failed"}
    assert "valve" in doc["machines"]["valve"]["error"] or "normal" in doc["machines"]["valve"]["error"]
    assert not (out / "valve" / "bundle").exists()
    for machine in ("fan", "pump"):
        entry = doc["machines"][machine]
        # Each stage ran on one of the two workers, and the record says which.
        assert set(entry["worker"]) == {"features", "train", "export"}
        assert all(a.startswith("tcp://127.0.0.1:") for a in entry["worker"].values())
        bundle = out / machine / "bundle"
        assert entry["bundle_sha256"] == hashlib.sha256((bundle / "manifest.json").read_bytes()).hexdigest()
        run, ref = tmp_path / f"run-{machine}", tmp_path / f"bundle-{machine}"
        t = edge_ad("-q", "train", str(plant), "--machine", machine, "--out", str(run), "--epochs",
                    EPOCHS, "--threads", "1", "--jobs", "1", env=env, timeout=300)
        assert t.returncode == 0, t.stderr.decode()[-2000:]
        e = edge_ad("-q", "export", str(run), "--out", str(ref), "--formats", "tflite", env=env,
                    timeout=300)
        assert e.returncode == 0, e.stderr.decode()[-2000:]
        assert (run / "model.pt").read_bytes() == (out / machine / "run" / "model.pt").read_bytes()
        files = _model_files(ref)
        assert {"model_int8.tflite", "model_int8.adq8", "threshold.json"} <= set(files)
        assert _model_files(bundle) == files
        assert json.loads((bundle / "threshold.json").read_text()) == \
            json.loads((ref / "threshold.json").read_text())
    # The DCASE machine kept its own train/test division (its 8 test normals are test).
    pump_clips = json.loads((out / "pump" / "run" / "clips.json").read_text())
    rows = pump_clips["clips"] if isinstance(pump_clips, dict) else pump_clips
    test_normal = [c for c in rows if c["split"] == "test" and c["label"] == "normal"]
    assert len(test_normal) == 8 and all("/test/" in c["path"] or c["path"].startswith("test/")
                                         for c in test_normal)
    assert list((out / "nights").glob("*.json"))


def test_second_run_retrains_nothing(first, plant, cluster, env):
    out, _ = first
    before = {m: _model_files(out / m / "bundle") for m in ("fan", "pump")}
    stamps = {m: (out / m / "bundle").stat().st_ino for m in ("fan", "pump")}
    r = edge_ad("fleet", str(plant), "--out", str(out), "--scheduler", cluster.address,
                "--machines", "fan,pump", "--json", *FLEET_ARGS, env=env, timeout=120)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    doc = json.loads(r.stdout)
    assert {m: doc["machines"][m]["status"] for m in ("fan", "pump")} == \
        {"fan": "unchanged", "pump": "unchanged"}
    assert doc["counts"]["trained"] == 0
    for m in ("fan", "pump"):
        assert _model_files(out / m / "bundle") == before[m]
        assert (out / m / "bundle").stat().st_ino == stamps[m]      # not even rewritten
        assert not list((out / m / "history").iterdir())


def test_gate_failure_keeps_the_current_bundle(first, plant, cluster, env):
    """Options changed (new fingerprint), but the candidate fails the int8 gate (a
    correlation of 1.0 is unreachable for int8): the current bundle stays."""
    out, _ = first
    before = _model_files(out / "fan" / "bundle")
    r = edge_ad("fleet", str(plant), "--out", str(out), "--scheduler", cluster.address,
                "--machines", "fan", "--min-correlation", "1", "--json", *FLEET_ARGS, env=env,
                timeout=300)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    entry = json.loads(r.stdout)["machines"]["fan"]
    assert entry["status"] == "kept-previous" and "int8 gate" in entry["reason"]
    assert _model_files(out / "fan" / "bundle") == before
    assert not list((out / "fan" / "history").iterdir())


def test_worse_candidate_keeps_the_current_bundle_unless_forced(first, plant, cluster, env):
    """One epoch instead of two: the candidate reconstructs the validation clips far worse,
    so the current bundle stays; with --force it is promoted and the old one goes to
    history/, byte for byte."""
    out, _ = first
    before = _model_files(out / "fan" / "bundle")
    args = ["fleet", str(plant), "--out", str(out), "--scheduler", cluster.address, "--machines",
            "fan", "--json", "--epochs", "1", "--formats", "tflite"]
    r = edge_ad(*args, env=env, timeout=300)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    entry = json.loads(r.stdout)["machines"]["fan"]
    assert entry["status"] == "kept-previous" and "worse" in entry["reason"]
    assert entry["comparison"]["worse"] is True and entry["comparison"]["interval"][0] > 0
    assert _model_files(out / "fan" / "bundle") == before
    r = edge_ad(*args, "--force", env=env, timeout=300)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    entry = json.loads(r.stdout)["machines"]["fan"]
    assert entry["status"] == "trained" and entry["comparison"]["worse"] is True
    assert _model_files(out / "fan" / "bundle") != before
    history = list((out / "fan" / "history").iterdir())
    assert len(history) == 1 and _model_files(history[0]) == before
    assert entry["bundle_sha256"] == hashlib.sha256(
        (out / "fan" / "bundle" / "manifest.json").read_bytes()).hexdigest()


def test_embedded_local_cluster_gives_the_same_bundle(first, plant, env, tmp_path):
    """Without --scheduler: an embedded LocalCluster, the same bytes."""
    r = edge_ad("fleet", str(plant), "--out", str(tmp_path / "f"), "--machines", "fan",
                "--workers", "1", "--json", *FLEET_ARGS, env=env, timeout=300)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    doc = json.loads(r.stdout)
    assert doc["scheduler"].startswith("embedded LocalCluster")
    assert doc["machines"]["fan"]["status"] == "trained"
    assert _model_files(tmp_path / "f" / "fan" / "bundle") == FIRST_FILES["fan"]


@pytest.mark.fault
def test_unreachable_scheduler_is_one_line_exit_2(plant, tmp_path, env):
    address = f"tcp://127.0.0.1:{free_port()}"
    r = edge_ad("fleet", str(plant), "--out", str(tmp_path / "f"), "--scheduler", address,
                "--connect-timeout", "2", *FLEET_ARGS, env=env, timeout=60)
    assert r.returncode == EXIT_BAD_INPUT
    err = r.stderr.decode().strip().splitlines()
    assert len(err) == 1 and address in err[0] and "Traceback" not in r.stderr.decode()


def test_compare_flags_only_a_clear_worsening():
    """The bootstrap interval against a direct computation: mean of log ratios."""
    from train.fleet import compare

    rng = np.random.default_rng(3)
    old = rng.gamma(4.0, 0.1, size=40)
    new = old * np.exp(rng.normal(0, 0.02, 40))
    same = compare(new, old)
    assert not same["worse"]
    assert same["mean_log_change"] == pytest.approx(float(np.mean(np.log(new / old))))
    noisy = old * 1.5 * np.exp(rng.normal(0, 0.1, 40))
    worse = compare(noisy, old)
    direct = np.log(noisy / old)
    assert worse["worse"] and worse["mean_log_change"] == pytest.approx(float(direct.mean()))
    lo, hi = worse["interval"]
    # The 95 % interval of a mean: about 1.96 standard errors either side.
    se = direct.std(ddof=1) / np.sqrt(len(direct))
    assert lo == pytest.approx(direct.mean() - 1.96 * se, abs=0.5 * se)
    assert hi == pytest.approx(direct.mean() + 1.96 * se, abs=0.5 * se)
    # 3 % worse is within the 5 % margin: not a reason to keep yesterday's bundle.
    assert not compare(old * 1.03, old)["worse"]
    better = compare(old * 0.5, old)
    assert not better["worse"] and better["interval"][1] < 0


@pytest.mark.fault
def test_killed_worker_does_not_fail_the_fleet(first, plant, cluster, env, tmp_path):
    """SIGKILL the worker that is training a machine: Dask reschedules the task on the
    other worker, the fleet completes and the bundles are those of the first run."""
    out, _ = first
    fleet = tmp_path / "fleet"
    proc = subprocess.Popen([sys.executable, "-m", "edge", "fleet", str(plant), "--out", str(fleet),
                             "--scheduler", cluster.address, "--machines", "fan,pump", *FLEET_ARGS],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    victim = None
    try:
        client = distributed.Client(cluster.address, timeout=10)
        try:
            deadline = time.monotonic() + 120
            while victim is None and time.monotonic() < deadline and proc.poll() is None:
                names = {a: w["name"] for a, w in client.scheduler_info(n_workers=-1)["workers"].items()}
                for addr, keys in client.processing().items():
                    training = [str(k) for k in keys if str(k).startswith("train-")]
                    if training:
                        victim, victim_addr = names[addr], addr
                        killed_machine = training[0].split("-")[1]
                        break
                time.sleep(0.05)
        finally:
            client.close()
        assert victim is not None, "no training task was seen running"
        cluster.kill(victim)
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stderr.decode()[-3000:]
    doc = json.loads((fleet / "fleet.json").read_text())
    assert {m: doc["machines"][m]["status"] for m in ("fan", "pump")} == \
        {"fan": "trained", "pump": "trained"}
    for m in ("fan", "pump"):
        assert _model_files(fleet / m / "bundle") == FIRST_FILES[m]
    # The interrupted training ran again, to the end, on the worker that survived.
    assert doc["machines"][killed_machine]["worker"]["train"] not in (None, victim_addr)
    cluster.start_worker(victim)
    cluster.wait_workers(2)


@pytest.mark.bad_input
@pytest.mark.parametrize("args, expected", [
    (["--keep", "0"], "argument --keep: 0: out of range, expected a whole number >= 1"),
    (["--epochs", "0"], "argument --epochs: 0: out of range, expected a whole number >= 1"),
    (["--machines", "fan,boiler"], "--machines boiler: not in"),
])
def test_fleet_names_a_bad_option_and_writes_nothing(plant, tmp_path, capsys, args, expected):
    from edge.cli import main

    try:
        rc = main(["fleet", str(plant), "--out", str(tmp_path / "f"), *args])
    except SystemExit as e:          # argparse's own refusals (the shared option types)
        rc = e.code
    assert rc == EXIT_BAD_INPUT
    # one error line (argparse prints its usage above its own)
    err = [line for line in capsys.readouterr().err.strip().splitlines() if "error:" in line]
    assert len(err) == 1 and expected in err[0]
    assert not (tmp_path / "f" / "fleet.json").exists()


@pytest.mark.bad_input
def test_fleet_of_a_missing_folder_is_exit_2(tmp_path, capsys):
    from edge.cli import main

    assert main(["fleet", str(tmp_path / "nowhere"), "--out", str(tmp_path / "f")]) == EXIT_BAD_INPUT
    assert "nowhere: not a folder" in capsys.readouterr().err
