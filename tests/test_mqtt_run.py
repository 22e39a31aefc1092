"""``edge-ad run --mqtt`` against a real mosquitto: alarm events and heartbeats arrive; with
the broker down they wait in the spool and arrive, in order, when a later edge-ad process
finds the broker up again."""
from __future__ import annotations

import numpy as np
import pytest

from runtime_support import (bundle_dir, edge_ad, lines, load_trained_run, make_anomalous,
                             normal_audio, write_wav)
from test_mqtt_alerts import Broker, Subscriber, free_port, needs_broker, wait_for


@pytest.fixture(scope="module")
def wavs(trained_run, tmp_path_factory):
    run = load_trained_run(trained_run)
    tmp = tmp_path_factory.mktemp("mqtt-audio")
    normal = normal_audio(run, 20.0)
    fault = make_anomalous(normal_audio(run, 20.0, skip=2), seed=3)
    return {"mixed": write_wav(tmp / "mixed.wav", np.concatenate([normal[:10 * 16000], fault, normal])),
            "normal": write_wav(tmp / "normal.wav", normal)}


def _run(bundle, wav, port, spool, *extra):
    return edge_ad("run", "--device", str(wav), "--fast", "--model", str(bundle_dir(bundle)),
                   "--window", "5s", "--every", "1s", "--mqtt", f"mqtt://127.0.0.1:{port}",
                   "--mqtt-topic", "plant/fan", "--spool", str(spool), "--heartbeat", "1h", *extra,
                   timeout=60)


@needs_broker
@pytest.mark.slow
@pytest.mark.fault
def test_run_publishes_alarm_events_and_spools_them_across_a_broker_outage_and_a_restart(
        bundle, wavs, tmp_path):
    port = free_port()
    broker = Broker(tmp_path, port)
    spool = tmp_path / "spool"
    sub = None
    try:
        broker.start()
        sub = Subscriber(port, "plant/fan")
        assert sub.connected.wait(10)
        r = _run(bundle, wavs["mixed"], port, spool)
        assert r.returncode == 0, r.stderr.decode()
        decisions = lines(r.stdout)
        wait_for(lambda: len(sub.messages) >= 3, 10, "heartbeat and alarm events")
        kinds = [m["type"] for _, m in sub.messages]
        assert kinds == ["heartbeat", "alarm_start", "alarm_end"]
        start = sub.messages[1][1]
        first_alarm = next(d for d in decisions if d["alarm"])
        assert start["stream_seconds"] == first_alarm["stream_seconds"]
        assert start["score"] == first_alarm["score"] and start["model"] == "model_int8.adq8"   # the C backend, int8's default
        assert [t for t, _ in sub.messages] == ["plant/fan/heartbeat", "plant/fan/event", "plant/fan/event"]
        assert not list(spool.glob("*.json"))  # all acknowledged

        # Broker down: a whole run's events stay in the spool; edge-ad still exits cleanly.
        broker.stop()
        wait_for(lambda: not sub.connected.is_set(), 10, "subscriber to see the broker go")
        r = _run(bundle, wavs["mixed"], port, spool)
        assert r.returncode == 0, r.stderr.decode()
        assert sorted(p.name.split(".")[1] for p in spool.glob("*.json")) == \
            ["alarm_end", "alarm_start", "heartbeat"]
        assert "events left in" in r.stderr.decode()

        # Broker back; a new edge-ad process sends the old events first, in order, then its own.
        broker.start()
        assert sub.connected.wait(10)
        n = len(sub.messages)
        r = _run(bundle, wavs["normal"], port, spool)
        assert r.returncode == 0, r.stderr.decode()
        wait_for(lambda: len(sub.messages) >= n + 4, 15, "spooled events and the new heartbeat")
        later = [m for _, m in sub.messages[n:]]
        assert [m["type"] for m in later] == ["heartbeat", "alarm_start", "alarm_end", "heartbeat"]
        assert [m["seq"] for m in later] == sorted(m["seq"] for m in later)
        assert not list(spool.glob("*.json"))
    finally:
        if sub is not None:
            sub.close()
        broker.stop()
