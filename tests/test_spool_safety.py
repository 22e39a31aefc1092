"""The alert spool made safe (issue 13, defects 1, 2, 3, 7, 11): one owner at a time, a
default spool per instance, ``seq`` and open alarms that survive restarts, a sender that
skips an unreadable entry instead of dying, connection problems logged once per change,
and a client id per instance. Real processes and a real mosquitto broker throughout."""
from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from edge.alerts import Alerts, MqttSender, default_client_id
from edge.decision import Decision
from edge.spool import STATE_FILE, Spool, SpoolLockedError
from runtime_support import edge_env
from test_mqtt_alerts import Broker, Subscriber, free_port, needs_broker, wait_for

HOLDER = textwrap.dedent("""
    import sys, time
    from edge.spool import Spool
    s = Spool(sys.argv[1])
    for i in range(int(sys.argv[2])):
        s.put({"type": "alarm_start", "i": i})
    print("ready", flush=True)
    sys.stdin.read()
""")


def _holder(spool: Path, n: int) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-c", HOLDER, str(spool), str(n)], env=edge_env(),
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.stdout.readline().strip() == b"ready", p.stderr.read().decode()
    return p


def _decision(t: float, *, alarm: bool, no_signal: str | None = None) -> Decision:
    return Decision(time=f"t{t}", monotonic=t, stream_seconds=t, score=2.0 if alarm else 0.5,
                    cutoff=1.0, anomaly=alarm, alarm=alarm, window_seconds=10.0, vectors=309,
                    dropped_samples=0, overruns=0, short_reads=0, reopens=0, no_signal=no_signal)


def _events(spool: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(spool.glob("*.json"))]


# --- defect 1: two owners of one spool ------------------------------------------------------
@pytest.mark.fault
def test_a_second_owner_of_a_spool_is_refused_naming_the_first_ones_pid(tmp_path):
    spool = tmp_path / "spool"
    holder = _holder(spool, 9)
    try:
        with pytest.raises(SpoolLockedError, match=f"pid {holder.pid}"):
            Spool(spool)
        # The refused second writer wrote nothing; the 9 events of the first are all there.
        assert [e["seq"] for e in _events(spool)] == list(range(1, 10))
    finally:
        holder.stdin.close()
        holder.wait(10)
    # The owner is gone (its lock went with it): the next process takes over and goes on.
    with Spool(spool) as s:
        assert s.put({"type": "alarm_end"}) == 10


@pytest.mark.fault
def test_a_killed_owner_leaves_no_stale_lock(tmp_path):
    spool = tmp_path / "spool"
    holder = _holder(spool, 1)
    holder.kill()
    holder.wait(10)
    with Spool(spool) as s:
        assert s.pending() == [1]


def test_default_client_id_and_spool_differ_per_instance_and_stay_put_across_restarts(
        tmp_path, monkeypatch):
    from edge.commands.run import default_spool_dir

    a = default_client_id("/srv/bundle-a", "hw:1", "edge-ad/h")
    b = default_client_id("/srv/bundle-b", "hw:1", "edge-ad/h")
    c = default_client_id("/srv/bundle-a", "hw:2", "edge-ad/h")
    assert len({a, b, c}) == 3 and a == default_client_id("/srv/bundle-a", "hw:1", "edge-ad/h")
    monkeypatch.setenv("EDGE_AD_SPOOL_ROOT", str(tmp_path))
    assert default_spool_dir(a) == tmp_path / a != default_spool_dir(b)


# --- defect 3: seq and open alarms across restarts -------------------------------------------
@pytest.mark.fault
def test_seq_keeps_rising_after_a_restart_with_an_empty_spool(tmp_path):
    with Spool(tmp_path) as s:
        seqs = [s.put({"type": "heartbeat"}) for _ in range(3)]
        for q in seqs:
            s.remove(q)      # all acknowledged: the spool is empty
    assert not list(tmp_path.glob("*.json"))
    with Spool(tmp_path) as s:
        assert s.put({"type": "alarm_start"}) == 4


@pytest.mark.fault
def test_an_alarm_open_at_a_crash_is_closed_with_reason_restart_after_it(tmp_path):
    with Spool(tmp_path) as s:
        alerts = Alerts(s, heartbeat_s=0)
        alerts.observe(_decision(0.0, alarm=False))
        alerts.observe(_decision(1.0, alarm=True))    # alarm_start #1, then the process dies
        assert json.loads((tmp_path / STATE_FILE).read_text())["alarm"]["seq"] == 1
    with Spool(tmp_path) as s:
        alerts = Alerts(s, heartbeat_s=0)             # the restart
        alerts.observe(_decision(2.0, alarm=True))    # the fault persists
    events = _events(tmp_path)
    assert [(e["type"], e["seq"]) for e in events] == [
        ("alarm_start", 1), ("alarm_end", 2), ("alarm_start", 3)]
    assert events[1]["reason"] == "restart" and events[1]["start_seq"] == 1
    with Spool(tmp_path) as s:                        # a clean end leaves nothing open
        alerts = Alerts(s, heartbeat_s=0)
        assert [e["type"] for e in _events(tmp_path)][-1] == "alarm_end"
        alerts.observe(_decision(3.0, alarm=False))
        assert "alarm" not in s.state


# --- defect 2: an unreadable entry -------------------------------------------------------------
@pytest.mark.fault
@needs_broker
def test_an_unreadable_entry_is_quarantined_reported_and_the_rest_delivered(tmp_path):
    port = free_port()
    broker = Broker(tmp_path, port)
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir()
    (spool_dir / "000000000001.alarm_start.json").mkdir()            # a directory as an entry
    (spool_dir / "000000000002.alarm_end.json").write_bytes(b"\x00\xff{")  # garbage
    broker.start()
    sub = sender = None
    try:
        sub = Subscriber(port, "q")
        assert sub.connected.wait(10)
        sender = MqttSender(f"mqtt://127.0.0.1:{port}", spool=Spool(spool_dir), topic="q")
        sender.spool.put({"type": "alarm_start", "i": 3})
        sender.notify()
        wait_for(lambda: len(sub.events()) >= 3, 15, "the good event and two spool_error events")
        events = sub.events()
        assert [e.get("i") for e in events if e["type"] == "alarm_start"] == [3]
        errors = sorted(e["entry"] for e in events if e["type"] == "spool_error")
        assert errors == ["000000000001.alarm_start.json", "000000000002.alarm_end.json"]
        assert sorted(p.name for p in (spool_dir / "quarantine").iterdir()) == errors
        assert sender._thread.is_alive() and sender.failed is None
        sender.spool.put({"type": "alarm_end", "i": 4})                # still sending
        sender.notify()
        wait_for(lambda: any(e.get("i") == 4 for e in sub.events()), 10, "a later event")
    finally:
        if sender is not None:
            sender.close(timeout=0.2)
        if sub is not None:
            sub.close()
        broker.stop()


@pytest.mark.fault
def test_a_sender_thread_that_dies_anyway_reports_it_to_its_owner(tmp_path, monkeypatch):
    class Boom(BaseException):
        pass

    def die(self):
        raise Boom("simulated")

    monkeypatch.setattr(MqttSender, "_pump_once", die)
    told = threading.Event()
    sender = MqttSender(f"mqtt://127.0.0.1:{free_port()}", spool=Spool(tmp_path), topic="x",
                        on_fatal=lambda e: told.set())
    try:
        assert told.wait(5)
        assert isinstance(sender.failed, Boom)
    finally:
        sender.close(timeout=0)


# --- defects 7 and 11: connection problems and client ids --------------------------------------
def _log_lines(caplog, needle: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if needle in r.getMessage()]


def _count_connects(monkeypatch) -> list[tuple]:
    """Every connection attempt paho makes (``socket.create_connection``), with the name of
    the thread that made it, so that "logged once" is checked over retries that really
    happened."""
    attempts: list[tuple] = []
    real = socket.create_connection

    def counting(address, *args, **kwargs):
        attempts.append((threading.current_thread().name, address))   # paho-mqtt-client-<id>
        if str(address[0]).endswith(".invalid"):
            # RFC 6761: never resolves. Answered here as the resolver would, so the test
            # asks no DNS server (none may be reachable, and a timeout blocks each retry).
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", counting)
    return attempts


@pytest.mark.fault
@pytest.mark.parametrize("url, needle", [
    ("mqtt://127.0.0.1:{port}", "refused the connection"),
    ("mqtt://no-such-broker.invalid:1883", "DNS: cannot resolve no-such-broker.invalid"),
])
def test_an_unreachable_broker_is_logged_once_not_at_every_retry(tmp_path, caplog, monkeypatch,
                                                                  url, needle):
    caplog.set_level(logging.INFO, logger="edge.alerts")
    attempts = _count_connects(monkeypatch)
    cid = f"retry-{tmp_path.name}"        # this case's own paho thread, not a previous one's
    sender = MqttSender(url.format(port=free_port()), spool=Spool(tmp_path), topic="x", client_id=cid)
    try:
        sender.client.reconnect_delay_set(min_delay=0.1, max_delay=0.2)   # many retries
        wait_for(lambda: _log_lines(caplog, needle), 15, needle)
        wait_for(lambda: sum(t.endswith(cid) for t, _ in attempts) >= 4, 30, "four connection attempts")
    finally:
        sender.close(timeout=0)
    assert len(_log_lines(caplog, needle)) == 1, caplog.text


@pytest.mark.fault
@needs_broker
def test_tls_to_a_plain_broker_and_a_refused_login_are_logged(tmp_path, caplog, monkeypatch):
    caplog.set_level(logging.INFO, logger="edge.alerts")
    attempts = _count_connects(monkeypatch)
    port = free_port()
    passwd = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwd), "u", "right"], check=True,
                   capture_output=True, timeout=30)
    os.chmod(passwd, 0o600)
    broker = Broker(tmp_path, port, extra=f"allow_anonymous false\npassword_file {passwd}\n")
    broker.start()
    senders = []
    try:
        senders.append(MqttSender(f"mqtts://127.0.0.1:{port}", spool=Spool(tmp_path / "a"),
                                  topic="x", client_id="tls"))
        senders.append(MqttSender(f"mqtt://127.0.0.1:{port}", spool=Spool(tmp_path / "b"),
                                  topic="x", username="u", password="wrong", client_id="pw"))
        for s in senders:
            s.client.reconnect_delay_set(min_delay=0.1, max_delay=0.2)
        wait_for(lambda: _log_lines(caplog, "refused the login"), 15, "the refused login")
        wait_for(lambda: _log_lines(caplog, "TLS") or _log_lines(caplog, "closed the connection"),
                 15, "the TLS failure")
        seen = {c: sum(t.endswith(c) for t, _ in attempts) for c in ("-tls", "-pw")}
        wait_for(lambda: all(sum(t.endswith(c) for t, _ in attempts) >= n + 3 for c, n in seen.items()),
                 30, "both senders retrying three more times")
    finally:
        for s in senders:
            s.close(timeout=0)
        broker.stop()
    assert len(_log_lines(caplog, "refused the login")) == 1, caplog.text
    # The TLS sender's problem, too, is one line however often it retried in that second.
    assert len(_log_lines(caplog, "closed the connection during set-up")) == 1, caplog.text


@pytest.mark.fault
@needs_broker
def test_two_instances_with_their_default_client_ids_do_not_knock_each_other_off(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="edge.alerts")
    port = free_port()
    broker = Broker(tmp_path, port)
    broker.start()
    ids = [default_client_id(f"/b/{i}", "hw:1", "t") for i in range(2)]
    senders = []
    try:
        for i, cid in enumerate(ids):
            senders.append(MqttSender(f"mqtt://127.0.0.1:{port}", spool=Spool(tmp_path / str(i)),
                                      topic=f"t{i}", client_id=cid))
        wait_for(lambda: len(_log_lines(caplog, "mqtt connected")) == 2, 10, "both connected")
        time.sleep(1.5)
        assert not _log_lines(caplog, "mqtt lost"), caplog.text
        # The same id twice (the old fixed edge-ad-<hostname>): the broker drops one.
        senders.append(MqttSender(f"mqtt://127.0.0.1:{port}", spool=Spool(tmp_path / "2"),
                                  topic="t2", client_id=ids[0]))
        wait_for(lambda: _log_lines(caplog, "mqtt lost"), 10, "a takeover")
    finally:
        for s in senders:
            s.close(timeout=0)
        broker.stop()


@pytest.mark.fault
def test_an_event_interrupted_between_its_state_and_its_file_is_restored_not_lost(tmp_path,
                                                                                   monkeypatch):
    """kill -9 after the state (the alarm is now closed) but before alarm_end's own file:
    the next start writes the event from the state's record, so neither is lost."""
    import edge.spool as spool_mod

    with Spool(tmp_path) as s:
        alerts = Alerts(s, heartbeat_s=0)
        alerts.observe(_decision(1.0, alarm=True))                    # alarm_start #1
        real = spool_mod.write_file_atomically

        def crash_on_the_event(path, data):
            if path.name.endswith(".alarm_end.json"):
                raise KeyboardInterrupt("killed here")                # stands in for kill -9
            return real(path, data)

        monkeypatch.setattr(spool_mod, "write_file_atomically", crash_on_the_event)
        with pytest.raises(KeyboardInterrupt):
            alerts.observe(_decision(2.0, alarm=False))
        monkeypatch.setattr(spool_mod, "write_file_atomically", real)
    assert [e["type"] for e in _events(tmp_path)] == ["alarm_start"]
    with Spool(tmp_path) as s:
        Alerts(s, heartbeat_s=0)
        assert [(e["type"], e["seq"]) for e in _events(tmp_path)] == [("alarm_start", 1),
                                                                      ("alarm_end", 2)]
        assert "alarm" not in s.state           # closed once, not closed again by "restart"
        s.remove(2)                              # acknowledged: never restored again
    with Spool(tmp_path) as s:
        assert s.pending() == [1]


def test_an_event_the_disk_refuses_leaves_no_half_change_behind(tmp_path, monkeypatch):
    """A full disk on the event's own file: the put fails with a SpoolError, and neither
    the sequence number nor the state (an alarm it would have opened) moves, in memory or
    on disk; the next event takes that number."""
    import errno

    import edge.spool as spool_mod
    from edge.spool import SpoolError

    with Spool(tmp_path / "s") as s:
        s.put({"type": "heartbeat"})
        before_state = (tmp_path / "s" / STATE_FILE).read_bytes()
        before = json.loads(json.dumps(s.state))
        real = spool_mod.write_file_atomically

        def full(path, data):
            if path.name.endswith(".alarm_start.json"):
                raise OSError(errno.ENOSPC, "No space left on device")
            return real(path, data)

        monkeypatch.setattr(spool_mod, "write_file_atomically", full)
        with pytest.raises(SpoolError, match="alarm_start.json: cannot write spooled event"):
            s.put({"type": "alarm_start"}, state={"alarm_open": True})
        assert s.state == before and "alarm_open" not in s.state
        assert (tmp_path / "s" / STATE_FILE).read_bytes() == before_state
        monkeypatch.setattr(spool_mod, "write_file_atomically", real)
        assert s.put({"type": "alarm_start"}, state={"alarm_open": True}) == 2
