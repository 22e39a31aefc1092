"""Alerts against a real mosquitto broker started here on a free loopback port, and the spool.

Every wait is bounded; brokers and clients are stopped in ``finally`` blocks.
"""
from __future__ import annotations

import getpass
import json
import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from edge.alerts import Alerts, MqttSender, parse_mqtt_url
from edge.decision import Decision
from edge.errors import EdgeAdError
from edge.spool import Spool
from ci_env import in_ci

MOSQUITTO = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None)
needs_broker = pytest.mark.skipif(MOSQUITTO is None and not in_ci(),
                                  reason="mosquitto not installed (scripts/setup.sh installs it)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(cond, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Broker:
    """mosquitto on 127.0.0.1:port; start/stop at will. Anonymous unless ``extra``
    configures TLS and a password file. ``persistent``: sessions, subscriptions and queued
    QoS 1 messages survive a restart (saved in ``tmp``), as a production broker keeps them
    for a consumer with a persistent session."""

    def __init__(self, tmp: Path, port: int, extra: str = "allow_anonymous true\n", *,
                 persistent: bool = False) -> None:
        assert MOSQUITTO, "mosquitto is required"
        self.port = port
        self.conf = tmp / "mosquitto.conf"
        persistence = (f"persistence true\npersistence_location {tmp}/\n" if persistent
                       else "persistence false\n")
        # "user" = whoever runs the test: as root, mosquitto would otherwise switch to the
        # mosquitto user and lose access to the test's private key files.
        self.conf.write_text(f"user {getpass.getuser()}\nlistener {port} 127.0.0.1\n{extra}"
                             f"{persistence}log_dest stderr\n")
        self.proc: subprocess.Popen | None = None

    def _accepting(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return True
        except OSError:
            return False

    def start(self) -> None:
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self._accepting, 10, f"mosquitto on port {self.port}")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
            self.proc = None


class Subscriber:
    """A paho client that (re)subscribes to ``topic/#`` on every connect and records payloads.
    ``persistent``: a persistent session (clean_session off), so the broker queues QoS 1
    messages published while this consumer is away, even across a broker restart."""

    def __init__(self, port: int, topic: str, *, tls: dict | None = None,
                 login: tuple[str, str] | None = None, persistent: bool = False) -> None:
        import paho.mqtt.client as mqtt

        self.messages: list[tuple[str, dict]] = []
        self.connected = threading.Event()
        self._lock = threading.Lock()
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-sub-{port}",
                        clean_session=not persistent)
        if tls:
            c.tls_set(**tls)
        if login:
            c.username_pw_set(*login)
        c.reconnect_delay_set(min_delay=0.05, max_delay=0.2)

        def on_connect(client, userdata, flags, reason, properties):
            client.subscribe(f"{topic}/#", qos=1)

        def on_subscribe(client, userdata, mid, reasons, properties):
            self.connected.set()

        def on_disconnect(client, userdata, flags, reason, properties):
            self.connected.clear()

        def on_message(client, userdata, msg):
            with self._lock:
                self.messages.append((msg.topic, json.loads(msg.payload)))

        c.on_connect, c.on_subscribe, c.on_message = on_connect, on_subscribe, on_message
        c.on_disconnect = on_disconnect
        c.connect_async("127.0.0.1", port, keepalive=5)
        c.loop_start()
        self.client = c

    def events(self) -> list[dict]:
        with self._lock:
            return [m for _, m in self.messages]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _put(sender: MqttSender, i: int, kind: str = "alarm_start") -> None:
    sender.spool.put({"type": kind, "i": i})
    sender.notify()


def _check_in_order_none_lost(events: list[dict], expected: list[int]) -> None:
    got = [e["i"] for e in events]
    first_seen = list(dict.fromkeys(got))
    assert first_seen == expected, f"order or loss: got {got}"
    # QoS 1 is at-least-once: a duplicate can only be a message whose PUBACK was lost with
    # the connection, i.e. re-sent right away, never a reordering.
    dups = len(got) - len(first_seen)
    assert dups <= 2, f"more duplicates than QoS 1 reconnects explain: {got}"


@needs_broker
@pytest.mark.slow
@pytest.mark.fault
def test_spooled_events_arrive_in_order_across_broker_restart_and_sender_restart(tmp_path):
    port = free_port()
    broker = Broker(tmp_path, port)
    spool_dir = tmp_path / "spool"
    broker.start()
    sub = sender = None
    try:
        sub = Subscriber(port, "site")
        assert sub.connected.wait(10)
        sender = MqttSender(f"mqtt://127.0.0.1:{port}", spool=Spool(spool_dir), topic="site")
        for i in range(3):
            _put(sender, i)
        wait_for(lambda: len(sub.events()) >= 3, 10, "3 live events")
        wait_for(lambda: len(sender.spool) == 0, 10, "spool to empty after PUBACKs")

        broker.stop()
        wait_for(lambda: not sub.connected.is_set(), 10, "subscriber to notice the broker is gone")
        for i in range(3, 8):
            _put(sender, i, kind="alarm_end" if i % 2 else "alarm_start")
        time.sleep(0.3)
        assert len(sender.spool) == 5  # nothing acknowledged while the broker is down
        assert len(list(spool_dir.glob("*.json"))) == 5

        broker.start()
        assert sub.connected.wait(10)
        wait_for(lambda: len(sender.spool) == 0, 40, "spooled events after broker restart")
        wait_for(lambda: 7 in [e["i"] for e in sub.events()], 10, "last event delivered")
        _check_in_order_none_lost(sub.events(), list(range(8)))

        # edge-ad restarts while the broker is down: the spool carries the events over.
        broker.stop()
        wait_for(lambda: not sub.connected.is_set(), 10, "subscriber to notice the broker is gone")
        for i in range(8, 11):
            _put(sender, i)
        sender.close(timeout=0.2)
        sender = None
        assert len(list(spool_dir.glob("*.json"))) == 3
        broker.start()
        assert sub.connected.wait(10)
        sender = MqttSender(f"mqtt://127.0.0.1:{port}", spool=Spool(spool_dir), topic="site")
        wait_for(lambda: len(sender.spool) == 0, 40, "events spooled by the previous process")
        wait_for(lambda: 10 in [e["i"] for e in sub.events()], 10, "last event delivered")
        _check_in_order_none_lost(sub.events(), list(range(11)))
        seqs = [e["seq"] for e in sub.events()]
        assert list(dict.fromkeys(seqs)) == sorted(set(seqs))  # spool order is broker order
    finally:
        if sender is not None:
            sender.close(timeout=0.2)
        if sub is not None:
            sub.close()
        broker.stop()


def _decision(t: float, score: float, alarm: bool) -> Decision:
    return Decision(time="2026-01-01T00:00:00.000Z", monotonic=t, stream_seconds=t, score=score,
                    cutoff=1.0, anomaly=score > 1.0, alarm=alarm, window_seconds=10.0,
                    vectors=309, dropped_samples=0, overruns=0, short_reads=0, reopens=0)


@needs_broker
def test_alarm_start_end_and_heartbeats_reach_the_broker_on_their_topics(tmp_path):
    port = free_port()
    broker = Broker(tmp_path, port)
    broker.start()
    sub = sender = None
    try:
        sub = Subscriber(port, "plant/fan1")
        assert sub.connected.wait(10)
        sender = MqttSender(f"mqtt://127.0.0.1:{port}", spool=Spool(tmp_path / "spool"),
                            topic="plant/fan1")
        alerts = Alerts(sender.spool, sinks=[sender], heartbeat_s=2.0, context={"device": "hw:1"})
        alarms = [False, False, True, True, False, False, False]
        for t, a in enumerate(alarms):
            alerts.observe(_decision(float(t), 2.0 if a else 0.5, a))
        wait_for(lambda: len(sub.messages) >= 6, 10, "2 alarm events and 4 heartbeats")
        kinds = [m["type"] for _, m in sub.messages]
        assert [k for k in kinds if k != "heartbeat"] == ["alarm_start", "alarm_end"]
        assert kinds.count("heartbeat") == 4  # t = 0, 2, 4, 6
        assert all(t == "plant/fan1/heartbeat" for t, m in sub.messages if m["type"] == "heartbeat")
        assert all(t == "plant/fan1/event" for t, m in sub.messages if m["type"] != "heartbeat")
        start = next(m for _, m in sub.messages if m["type"] == "alarm_start")
        assert start["score"] == 2.0 and start["cutoff"] == 1.0 and start["device"] == "hw:1"
    finally:
        if sender is not None:
            sender.close(timeout=0.5)
        if sub is not None:
            sub.close()
        broker.stop()


def test_spool_is_bounded_dropping_oldest_heartbeats_first(tmp_path, caplog):
    spool = Spool(tmp_path, max_events=4)
    kinds = ["heartbeat", "alarm_start", "heartbeat", "heartbeat", "alarm_end", "heartbeat"]
    seqs = [spool.put({"type": k}) for k in kinds]
    assert seqs == [1, 2, 3, 4, 5, 6]
    # 6 events, room for 4: heartbeats #1 and #3 (the oldest) went.
    assert spool.pending() == [2, 4, 5, 6]
    assert "dropped heartbeat #1" in caplog.text and "dropped heartbeat #3" in caplog.text
    for _ in range(3):
        spool.put({"type": "alarm_start"})
    # Heartbeats #4 and #6 go next; then, with none left, the oldest alarm event (#2).
    assert spool.pending() == [5, 7, 8, 9] and spool.dropped == 5
    assert "dropped alarm_start #2" in caplog.text
    assert sorted(p.name for p in tmp_path.glob("*.json")) == [
        "000000000005.alarm_end.json", "000000000007.alarm_start.json",
        "000000000008.alarm_start.json", "000000000009.alarm_start.json"]


def test_spool_survives_a_restart_and_leaves_no_partial_files(tmp_path):
    spool = Spool(tmp_path)
    for i in range(3):
        spool.put({"type": "alarm_start", "i": i})
    spool.remove(1)
    (tmp_path / "000000000009.alarm_end.json.tmp").write_text("{half")  # a crash mid-write
    spool.close()   # one owner at a time: the next process takes over
    again = Spool(tmp_path)
    assert again.pending() == [2, 3]
    assert json.loads(again.read(3)) == {"type": "alarm_start", "i": 2, "seq": 3}
    assert not list(tmp_path.glob("*.tmp"))
    assert again.put({"type": "alarm_end"}) == 4  # numbering continues after a restart


def test_mqtt_urls_parse_and_bad_ones_are_refused():
    assert parse_mqtt_url("mqtt://broker.local") == ("broker.local", 1883, False)
    assert parse_mqtt_url("mqtts://b:8884") == ("b", 8884, True)
    assert parse_mqtt_url("10.0.0.2:1884") == ("10.0.0.2", 1884, False)
    for bad in ("http://x", "mqtt://", "mqtt://h:99999"):
        with pytest.raises(EdgeAdError):
            parse_mqtt_url(bad)


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _make_pki(d: Path) -> None:
    """A CA, a server certificate for 127.0.0.1 and a client certificate (EC P-256)."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
             "-subj", "/CN=edge-ad test CA", cwd=d)
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    for name, cn in (("server", "127.0.0.1"), ("client", "edge-ad-fan1")):
        _openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}", cwd=d)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", "san.ext", cwd=d)


@needs_broker
def test_tls_with_client_certificate_and_password_delivers_and_a_wrong_password_spools(tmp_path):
    from edge.alerts import read_password

    if shutil.which("openssl") is None and not in_ci():
        pytest.skip("openssl not installed (scripts/setup.sh installs it)")
    _make_pki(tmp_path)
    passwd = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwd), "fan1", "s3cret"], check=True,
                   capture_output=True, timeout=30)
    os.chmod(passwd, 0o600)
    port = free_port()
    broker = Broker(tmp_path, port, extra=(
        f"cafile {tmp_path / 'ca.pem'}\ncertfile {tmp_path / 'server.pem'}\n"
        f"keyfile {tmp_path / 'server.key'}\nrequire_certificate true\n"
        f"allow_anonymous false\npassword_file {passwd}\n"))
    (tmp_path / "pw").write_text("s3cret\n")
    (tmp_path / "bad").write_text("wrong\n")
    tls = {"ca_certs": str(tmp_path / "ca.pem"), "certfile": str(tmp_path / "client.pem"),
           "keyfile": str(tmp_path / "client.key")}
    broker.start()
    sub = good = bad = None
    try:
        sub = Subscriber(port, "secure", tls=tls, login=("fan1", "s3cret"))
        assert sub.connected.wait(10)
        opts = dict(topic="secure", username="fan1", tls_ca=tls["ca_certs"],
                    tls_cert=tls["certfile"], tls_key=tls["keyfile"])
        good = MqttSender(f"mqtts://127.0.0.1:{port}", spool=Spool(tmp_path / "s1"),
                          password=read_password(str(tmp_path / "pw")), **opts)
        _put(good, 1)
        wait_for(lambda: len(sub.events()) == 1, 10, "the event over TLS")
        assert sub.events()[0]["i"] == 1
        bad = MqttSender(f"mqtts://127.0.0.1:{port}", spool=Spool(tmp_path / "s2"),
                         password=read_password(str(tmp_path / "bad")), client_id="bad", **opts)
        _put(bad, 2)
        time.sleep(1.5)
        assert len(bad.spool) == 1 and len(sub.events()) == 1  # refused, kept for later
    finally:
        for sender in (good, bad):
            if sender is not None:
                sender.close(timeout=0.2)
        if sub is not None:
            sub.close()
        broker.stop()
