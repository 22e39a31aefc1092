"""Alerts over MQTT: alarm start and end events and a periodic heartbeat, never lost.

Every event is first written to the on-disk :class:`~edge.spool.Spool`, then published
from there with QoS 1 by a single sender thread, and removed from the spool only when the
broker's PUBACK arrives (``on_publish``). The sender keeps one message in flight at a time
(stop-and-wait): alarms are rare and a heartbeat a minute is little, and it makes the order
on the broker the order of the spool even across reconnects, where paho resends the one
unacknowledged message itself before the sender moves on. A broker that is down, or an
edge-ad that restarts, only delays events; duplicates happen only as QoS 1 allows (a
PUBACK lost with the connection).

``paho-mqtt`` (>= 2, callback API version 2) is imported lazily.
"""
from __future__ import annotations

import json
import logging
import socket
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

from .decision import Decision, utc_now
from .errors import EdgeAdError
from .spool import HEARTBEAT, Spool, SpoolError

log = logging.getLogger(__name__)


class AlertConfigError(EdgeAdError, ValueError):
    """An MQTT option that cannot be used (bad URL, unreadable password or CA file)."""


def parse_mqtt_url(url: str) -> tuple[str, int, bool]:
    """``mqtt://host[:1883]`` or ``mqtts://host[:8883]`` -> (host, port, tls)."""
    u = urllib.parse.urlsplit(url if "://" in url else f"mqtt://{url}")
    if u.scheme not in ("mqtt", "mqtts", "tcp", "ssl") or not u.hostname:
        raise AlertConfigError(f"--mqtt {url!r}: expected mqtt://HOST[:PORT] or mqtts://HOST[:PORT]")
    tls = u.scheme in ("mqtts", "ssl")
    try:
        port = u.port or (8883 if tls else 1883)
    except ValueError:
        raise AlertConfigError(f"--mqtt {url!r}: port is not a number 1..65535") from None
    return u.hostname, port, tls


class MqttSender:
    """Publishes spooled events in order, one in flight, removing each on PUBACK.

    Args:
        url: ``mqtt://host:port`` or ``mqtts://host:port``.
        spool: where events wait.
        topic: prefix; events go to ``<topic>/event``, heartbeats to ``<topic>/heartbeat``.
        username, password: broker login (sent only over what the URL says: use TLS).
        tls_ca, tls_cert, tls_key: CA bundle and client certificate files (enable TLS).
        client_id: MQTT client id (default ``edge-ad-<hostname>``).
        keepalive: seconds.
    """

    def __init__(self, url: str, *, spool: Spool, topic: str = "edge-ad",
                 username: str | None = None, password: str | None = None,
                 tls_ca: str | None = None, tls_cert: str | None = None,
                 tls_key: str | None = None, client_id: str | None = None,
                 keepalive: int = 30) -> None:
        try:
            import paho.mqtt.client as mqtt
        except ImportError:
            raise AlertConfigError("--mqtt needs paho-mqtt (pip install 'edge-ad[mqtt]')") from None
        self.host, self.port, tls = parse_mqtt_url(url)
        self.url = url
        self.topic = topic.rstrip("/")
        self.spool = spool
        self._mqtt = mqtt
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._connected = False
        self._closing = False
        self._inflight: tuple[int, int] | None = None  # (mid, seq)
        self._early_acks: set[int] = set()
        self.published = 0
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                             client_id=client_id or f"edge-ad-{socket.gethostname()}",
                             protocol=mqtt.MQTTv311, clean_session=True)
        if username:
            client.username_pw_set(username, password)
        if tls or tls_ca or tls_cert:
            for f in (tls_ca, tls_cert, tls_key):
                if f and not Path(f).is_file():
                    raise AlertConfigError(f"{f}: no such file (expected a PEM certificate or key)")
            client.tls_set(ca_certs=tls_ca, certfile=tls_cert, keyfile=tls_key)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        self.client = client
        client.connect_async(self.host, self.port, keepalive=keepalive)
        client.loop_start()
        self._thread = threading.Thread(target=self._pump, name="edge-ad-mqtt", daemon=True)
        self._thread.start()

    # paho callbacks (network thread): short, never call back into paho while holding the lock
    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if getattr(reason, "is_failure", False):
            log.warning("mqtt %s:%d refused the connection: %s", self.host, self.port, reason)
            return
        log.info("mqtt connected to %s:%d", self.host, self.port)
        with self._wake:
            self._connected = True
            self._wake.notify_all()

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        with self._wake:
            was = self._connected
            self._connected = False
        if was:
            log.warning("mqtt lost %s:%d (%s); events are spooled in %s until it is back",
                        self.host, self.port, reason, self.spool.dir)

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, properties: Any) -> None:
        with self._wake:
            if self._inflight is None or self._inflight[0] != mid:
                # PUBACK before publish() returned to the sender: matched there.
                self._early_acks.add(mid)
                return
            # Out of the spool before the slot is freed, or the sender would see the
            # acknowledged event still at the head of the spool and send it again.
            self.spool.remove(self._inflight[1])
            self.published += 1
            self._inflight = None
            self._wake.notify_all()

    # sender thread ------------------------------------------------------------------
    def notify(self) -> None:
        with self._wake:
            self._wake.notify_all()

    def _pump(self) -> None:
        while True:
            with self._wake:
                while not self._closing and (not self._connected or self._inflight is not None
                                             or not self.spool.pending()):
                    self._wake.wait(0.5)
                if self._closing:
                    return
            pending = self.spool.pending()
            if not pending:  # the bound dropped it meanwhile
                continue
            seq = pending[0]
            data = self.spool.read(seq)
            if data is None:  # dropped by the bound meanwhile
                continue
            kind = self.spool.kind(seq) or "event"
            topic = f"{self.topic}/{HEARTBEAT if kind == HEARTBEAT else 'event'}"
            with self._wake:
                # Reserve the slot before publish(): a PUBACK may arrive before it returns.
                self._inflight = (-1, seq)
            info = self.client.publish(topic, data, qos=1)
            with self._wake:
                if info.rc not in (self._mqtt.MQTT_ERR_SUCCESS, self._mqtt.MQTT_ERR_NO_CONN):
                    log.warning("mqtt publish of #%d failed (rc %s); retrying", seq, info.rc)
                    self._inflight = None
                    self._wake.wait(1.0)
                    continue
                # NO_CONN: paho keeps the message and sends it on reconnect, in order.
                if info.mid in self._early_acks:
                    self._early_acks.discard(info.mid)
                    self.spool.remove(seq)
                    self.published += 1
                    self._inflight = None
                else:
                    self._inflight = (info.mid, seq)

    def drain(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the spool to empty; True if it did."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.spool.pending():
                return True
            time.sleep(0.05)
        return not self.spool.pending()

    def close(self, *, timeout: float = 2.0) -> None:
        """Give pending events ``timeout`` seconds, then disconnect; the rest stays spooled."""
        self.drain(timeout)
        with self._wake:
            self._closing = True
            self._wake.notify_all()
        self._thread.join(timeout=2.0)
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()
        left = len(self.spool)
        if left:
            log.warning("mqtt: %d events left in %s, sent at the next start", left, self.spool.dir)


class Alerts:
    """Turns decisions into events: ``alarm_start`` / ``alarm_end`` on each change of the
    alarm and a ``heartbeat`` every ``heartbeat_s`` seconds (monotonic clock) with the
    current score.

    Args:
        sender: anything with ``spool`` and ``notify()`` (an :class:`MqttSender`).
        heartbeat_s: seconds between heartbeats (0 = none).
        context: fields added to every event (host, device, model file).
    """

    def __init__(self, sender: Any, *, heartbeat_s: float = 60.0,
                 context: dict[str, Any] | None = None) -> None:
        self.sender = sender
        self.heartbeat_s = heartbeat_s
        self.context = dict(context or {})
        self._alarm = False
        self._last_beat: float | None = None

    def _emit(self, kind: str, d: Decision) -> None:
        event = {"type": kind, "time": utc_now(), "decision_time": d.time,
                 "stream_seconds": d.stream_seconds, "score": d.score, "cutoff": d.cutoff,
                 "anomaly": d.anomaly, "alarm": d.alarm, **self.context}
        try:
            seq = self.sender.spool.put(event)
        except SpoolError as e:
            # Alerts must never stop detection: the decision lines go on regardless.
            log.error("%s not sent: %s", kind, e)
            return
        log.log(logging.WARNING if kind != HEARTBEAT else logging.DEBUG,
                "%s #%d score %.4g cutoff %.4g", kind, seq, d.score, d.cutoff)
        self.sender.notify()

    def observe(self, d: Decision) -> None:
        if d.alarm != self._alarm:
            self._alarm = d.alarm
            self._emit("alarm_start" if d.alarm else "alarm_end", d)
        if self.heartbeat_s > 0 and (self._last_beat is None
                                     or d.monotonic - self._last_beat >= self.heartbeat_s):
            self._last_beat = d.monotonic
            self._emit(HEARTBEAT, d)


def read_password(path: str) -> str:
    """The first line of a password file (kept out of the command line and the unit file)."""
    try:
        return Path(path).read_text().splitlines()[0].strip() if Path(path).stat().st_size else ""
    except OSError as e:
        raise AlertConfigError(f"{path}: cannot read MQTT password file ({e.strerror})") from None


def event_json(event: dict[str, Any]) -> str:
    return json.dumps(event, separators=(",", ":"))
