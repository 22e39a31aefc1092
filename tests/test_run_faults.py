"""``edge-ad run`` under faults, as real processes (issue 13, defects 1, 2, 3, 5, 6, 13):
another owner of the spool, a dead alert sender, a kill with an alarm open, a full disk or
a file-size limit under --json-out, stdout to /dev/full, SIGTERM and SIGINT while stdin
is idle or the broker is away, and a dead microphone."""
from __future__ import annotations

import json
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from edge.errors import EXIT_ALERTS, EXIT_BAD_INPUT, EXIT_OUTPUT
from runtime_support import (bundle_dir, edge_ad, edge_env, lines, load_trained_run,
                             make_anomalous, normal_audio, write_wav)
from test_mqtt_alerts import free_port, wait_for
from test_spool_safety import _events, _holder
from ci_env import in_ci

SR = 16000
pytestmark = pytest.mark.fault   # every test here injects one fault (counted by conftest)


@pytest.fixture(scope="module")
def audio(trained_run, tmp_path_factory):
    run = load_trained_run(trained_run)
    tmp = tmp_path_factory.mktemp("fault-audio")
    normal = normal_audio(run, 12.0)
    fault = make_anomalous(normal_audio(run, 12.0, skip=2), seed=5)
    return {"normal": write_wav(tmp / "normal.wav", normal),
            "fault": write_wav(tmp / "fault.wav", fault),
            "mixed": write_wav(tmp / "mixed.wav", np.concatenate([normal, fault, normal])),
            "silence": write_wav(tmp / "silence.wav", np.zeros(12 * SR, np.int16)),
            "dead_then_live": write_wav(tmp / "dead.wav", np.concatenate(
                [normal[:6 * SR], np.full(8 * SR, 1200, np.int16), normal]))}


def _popen(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "edge", *args], env=edge_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def _wait_ready(p: subprocess.Popen) -> None:
    """Until the run logs 'ready' (its signal handlers are in place)."""
    deadline = time.monotonic() + 60
    seen = b""
    while time.monotonic() < deadline:
        line = p.stderr.readline()
        seen += line
        if b"ready in" in line:
            return
        if not line and p.poll() is not None:
            break
    raise AssertionError(f"run never got ready: {seen.decode()}")


def _mqtt(spool: Path) -> list[str]:
    # A broker that is not there: every event stays in the spool, where the test reads it.
    return ["--mqtt", f"mqtt://127.0.0.1:{free_port()}", "--spool", str(spool),
            "--heartbeat", "0"]


# --- defect 1 ------------------------------------------------------------------------------------
def test_run_refuses_a_spool_that_another_process_owns_and_names_it(bundle, audio, tmp_path):
    spool = tmp_path / "spool"
    holder = _holder(spool, 2)
    try:
        r = edge_ad("run", "--device", str(audio["normal"]), "--fast", "--model",
                    str(bundle_dir(bundle)), *_mqtt(spool))
    finally:
        holder.stdin.close()
        holder.wait(10)
    err = r.stderr.decode()
    assert r.returncode == EXIT_BAD_INPUT, err
    assert f"pid {holder.pid}" in err and "Traceback" not in err
    assert [e["i"] for e in _events(spool)] == [0, 1]


# --- defect 2: the sender dies -> the process goes down non-zero ---------------------------------
def test_run_exits_with_the_alerts_code_when_the_sender_thread_dies(bundle, audio, tmp_path,
                                                                    monkeypatch):
    from edge.alerts import MqttSender
    from edge.cli import main

    class Boom(BaseException):
        pass

    def die(self):
        raise Boom("simulated sender death")

    monkeypatch.setattr(MqttSender, "_pump_once", die)
    # --loop: the source never ends by itself; only the sender's death can stop it.
    code = main(["run", "--device", str(audio["normal"]), "--loop", "--model",
                 str(bundle_dir(bundle)), "--window", "2s", *_mqtt(tmp_path / "spool")])
    assert code == EXIT_ALERTS


# --- defect 3: kill -9 with an alarm open --------------------------------------------------------
def test_an_alarm_open_at_kill_9_is_closed_with_reason_restart_by_the_next_run(bundle, audio,
                                                                              tmp_path):
    spool = tmp_path / "spool"
    p = _popen("run", "--device", str(audio["fault"]), "--loop", "--fast", "--model",
               str(bundle_dir(bundle)), "--window", "2s", *_mqtt(spool))
    try:
        wait_for(lambda: list(spool.glob("*.alarm_start.json")) or p.poll() is not None, 60,
                 "an alarm_start in the spool")
        p.kill()
    finally:
        p.kill()
        p.wait(10)
    r = edge_ad("run", "--device", str(audio["normal"]), "--fast", "--model",
                str(bundle_dir(bundle)), "--window", "2s", *_mqtt(spool))
    assert r.returncode == 0, r.stderr.decode()
    events = _events(spool)
    starts = [e for e in events if e["type"] == "alarm_start"]
    ends = [e for e in events if e["type"] == "alarm_end"]
    assert len(starts) == 1 and len(ends) == 1, events
    assert ends[0]["reason"] == "restart" and ends[0]["start_seq"] == starts[0]["seq"]
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


# --- defect 5: full disk -------------------------------------------------------------------------
def _limit_file_size(n: int):
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (n, n))


def test_a_file_size_limit_on_json_out_keeps_whole_lines_and_alerts_go_on(bundle, audio,
                                                                          tmp_path):
    out = tmp_path / "d.jsonl"
    spool = tmp_path / "spool"
    p = subprocess.run([sys.executable, "-m", "edge", "run", "--device", str(audio["mixed"]),
                        "--fast", "--model", str(bundle_dir(bundle)), "--window", "2s",
                        "--json-out", str(out), *_mqtt(spool)],
                       env=edge_env(), capture_output=True, timeout=120,
                       preexec_fn=_limit_file_size(2000))
    err = p.stderr.decode()
    assert p.returncode == EXIT_OUTPUT, err
    assert "Traceback" not in err and err.count("cannot write decision lines") == 1, err
    text = out.read_text()
    assert text.endswith("\n") and len(text) <= 2000
    assert all(json.loads(s) for s in text.splitlines())   # every line whole
    kinds = [e["type"] for e in _events(spool)]
    # Detection went on after the output failed: the fault in the middle still alarmed.
    assert kinds[0] == "output_error" and "alarm_start" in kinds and "alarm_end" in kinds, kinds


def test_stdout_to_dev_full_is_one_clear_error_and_exit_6(bundle, audio):
    with open("/dev/full", "w") as full:
        p = subprocess.run([sys.executable, "-m", "edge", "run", "--device", str(audio["normal"]),
                            "--fast", "--model", str(bundle_dir(bundle)), "--window", "2s"],
                           env=edge_env(), stdout=full, stderr=subprocess.PIPE, timeout=120)
    err = p.stderr.decode()
    assert p.returncode == EXIT_OUTPUT, err
    assert "Traceback" not in err and "No space left on device" in err
    assert err.count("cannot write decision lines") == 1


def test_score_to_dev_full_is_one_clear_error_and_exit_6(bundle, audio):
    with open("/dev/full", "w") as full:
        p = subprocess.run([sys.executable, "-m", "edge", "score", str(bundle_dir(bundle)),
                            str(audio["normal"])], env=edge_env(), stdout=full,
                           stderr=subprocess.PIPE, timeout=120)
    err = p.stderr.decode()
    assert p.returncode == EXIT_OUTPUT and "Traceback" not in err, err
    assert "No space left on device" in err


# --- defect 6: signals ---------------------------------------------------------------------------
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_run_promptly_while_stdin_is_idle(bundle, sig):
    p = _popen("run", "--device", "-", "--model", str(bundle_dir(bundle)), stdin=subprocess.PIPE)
    try:
        _wait_ready(p)
        time.sleep(0.3)           # blocked in the read: no audio is coming
        p.send_signal(sig)
        # Before the fix the read was retried after the handler and this waited forever.
        p.wait(timeout=5)
    finally:
        p.kill()
        p.stdin.close()
    assert p.returncode == 0
    assert f"stopped on {sig.name}" in p.stderr.read().decode()


def test_sigterm_stops_run_promptly_while_the_broker_is_away(bundle, audio, tmp_path):
    spool = tmp_path / "spool"
    p = _popen("run", "--device", str(audio["fault"]), "--loop", "--model",
               str(bundle_dir(bundle)), "--window", "2s", *_mqtt(spool))
    try:
        _wait_ready(p)
        wait_for(lambda: list(spool.glob("*.json")), 30, "an event waiting for the broker")
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=5)
    finally:
        p.kill()
    assert p.returncode == 0, p.stderr.read().decode()
    assert list(spool.glob("*.alarm_start.json"))   # kept for the next start


# --- defect 13: a dead microphone ----------------------------------------------------------------
def test_digital_silence_is_no_signal_not_an_anomaly_and_raises_no_alarm(bundle, audio, tmp_path):
    spool = tmp_path / "spool"
    r = edge_ad("run", "--device", str(audio["silence"]), "--fast", "--model",
                str(bundle_dir(bundle)), "--window", "2s", *_mqtt(spool))
    assert r.returncode == 0, r.stderr.decode()
    ds = lines(r.stdout)
    assert ds and all(d["no_signal"] == "silence" for d in ds)
    # The model's score of silence is far above the cutoff: the defect this guards against.
    assert all(d["score"] > d["cutoff"] for d in ds)
    assert not any(d["anomaly"] or d["alarm"] for d in ds)
    kinds = [e["type"] for e in _events(spool)]
    assert kinds == ["no_signal_start"], kinds


def test_a_stuck_dc_stretch_starts_and_ends_no_signal_and_live_audio_is_scored_again(
        bundle, audio, tmp_path):
    spool = tmp_path / "spool"
    r = edge_ad("run", "--device", str(audio["dead_then_live"]), "--fast", "--model",
                str(bundle_dir(bundle)), "--window", "2s", *_mqtt(spool))
    assert r.returncode == 0, r.stderr.decode()
    ds = lines(r.stdout)
    by_t = {d["stream_seconds"]: d for d in ds}
    # 0..6 s live, 6..14 s stuck at 1200 counts, then live. A 2 s window (two 1 s steps)
    # with any step inside the stuck stretch is "dc"; one of live steps only is not.
    assert [by_t[float(t)]["no_signal"] for t in range(5, 18)] == \
        [None, None] + ["dc"] * 9 + [None, None]
    kinds = [e["type"] for e in _events(spool)]
    assert kinds[:2] == ["no_signal_start", "no_signal_end"] and "alarm_start" not in kinds


def test_sigterm_stops_run_promptly_while_an_alsa_read_is_blocked(bundle, tmp_path):
    """tests/alsa/asound.conf makes hw:1 read its samples from EDGE_AD_ALSA_RAW; a FIFO
    that is open but silent there blocks alsa-lib inside snd_pcm_readi, as a stalled USB
    microphone does."""
    import os

    from runtime_support import ALSA_CONF

    if not in_ci():
        pytest.importorskip("alsaaudio")
    fifo = tmp_path / "card.raw"
    os.mkfifo(fifo)
    keep_open = os.open(fifo, os.O_RDWR)   # a writer that never writes
    p = subprocess.Popen([sys.executable, "-m", "edge", "run", "--device", "hw:1", "--model",
                          str(bundle_dir(bundle))],
                         env=edge_env(ALSA_CONFIG_PATH=str(ALSA_CONF), EDGE_AD_ALSA_RAW=str(fifo)),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_ready(p)
        time.sleep(0.5)                    # inside the blocked read by now
        assert p.poll() is None
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=5)
    finally:
        p.kill()
        os.close(keep_open)
    assert p.returncode == 0, p.stderr.read().decode()
    assert "stopped on SIGTERM" in p.stderr.read().decode()


def test_a_reader_that_closes_the_pipe_stops_run_cleanly(bundle, audio):
    """``edge-ad run ... | head -2``: the reader going away ends the run with exit 0, not
    an output error (every line it asked for was whole)."""
    p = _popen("run", "--device", str(audio["normal"]), "--loop", "--fast", "--model",
               str(bundle_dir(bundle)), "--window", "2s")
    try:
        first = [json.loads(p.stdout.readline()) for _ in range(2)]
        p.stdout.close()
        p.wait(timeout=30)
    finally:
        p.kill()
    assert [d["stream_seconds"] for d in first] == [3.0, 4.0]
    assert p.returncode == 0
    assert "stopped on closed output pipe" in p.stderr.read().decode()


def test_two_runs_on_one_board_get_their_own_default_spools_and_keep_every_event(
        bundle, audio, tmp_path):
    """Defect 1 as reported: two instances with the default spool. Each now gets its own
    (named by its client id: bundle, device, topic), so all events of both are kept."""
    root = tmp_path / "spools"
    args = ["run", "--fast", "--model", str(bundle_dir(bundle)), "--window", "2s",
            "--mqtt", f"mqtt://127.0.0.1:{free_port()}", "--heartbeat", "0"]
    env = edge_env(EDGE_AD_SPOOL_ROOT=str(root))
    procs = [subprocess.Popen([sys.executable, "-m", "edge", *args, "--device", str(audio[k])],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
             for k in ("mixed", "fault")]
    errs = [p.communicate(timeout=120)[1].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errs
    spools = sorted(root.iterdir())
    assert len(spools) == 2 and all(s.name.startswith("edge-ad-") for s in spools)
    kinds = sorted(tuple(e["type"] for e in _events(s)) for s in spools)
    # mixed: the fault in the middle starts and ends an alarm; fault: one alarm, open at the end.
    assert kinds == [("alarm_start",), ("alarm_start", "alarm_end")]
    # An explicit --mqtt-client-id names the spool folder.
    r = edge_ad(*args, "--device", str(audio["fault"]), "--mqtt-client-id", "press-7", env=env)
    assert r.returncode == 0, r.stderr.decode()
    assert (root / "press-7").is_dir() and _events(root / "press-7")
