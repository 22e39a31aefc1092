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

import hashlib
import json
import logging
import os
import socket
import ssl
import sys
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any, Callable, Protocol

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


class Sink(Protocol):
    """Where spooled events go: told when there is something new, closed at the end.

    A sink reads the :class:`~edge.spool.Spool` it was given and removes an event only once
    it is delivered; :class:`Alerts` only writes to the spool and calls :meth:`notify`, so
    another transport (a webhook, Home Assistant) drops in beside MQTT.
    """

    failed: BaseException | None

    def notify(self) -> None: ...

    def close(self, *, timeout: float = 2.0) -> None: ...


def connection_problem(exc: BaseException | None, host: str, port: int) -> str:
    """One line saying why a connection attempt failed: DNS, refused, TLS, unreachable."""
    if isinstance(exc, socket.gaierror):
        return f"DNS: cannot resolve {host} ({exc.strerror or exc})"
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake with {host}:{port} failed ({exc.reason or exc})"
    if isinstance(exc, ConnectionRefusedError):
        return f"{host}:{port} refused the connection (no broker listening)"
    if isinstance(exc, (ConnectionResetError, BrokenPipeError, ssl.SSLEOFError)):
        return f"{host}:{port} closed the connection during set-up (TLS to a plain broker?)"
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return f"{host}:{port} did not answer (timed out)"
    if isinstance(exc, OSError):
        return f"{host}:{port} unreachable ({exc.strerror or exc})"
    return f"{host}:{port}: connection failed ({exc!r})"


def default_client_id(*parts: str) -> str:
    """``edge-ad-<host>-<8 hex>``: stable for one instance (same parts), different for two
    instances on one board (another bundle, device or topic), so neither knocks the other
    off the broker (MQTT allows one connection per client id)."""
    digest = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:8]
    return f"edge-ad-{socket.gethostname()}-{digest}"


class MqttSender:
    """Publishes spooled events in order, one in flight, removing each on PUBACK (a
    :class:`Sink`).

    The sender thread never dies of one bad event: an unreadable entry is quarantined by
    the spool and reported with a ``spool_error`` event; any other error is logged and
    retried after a pause. Should the thread end anyway, :attr:`failed` holds why and
    ``on_fatal`` is called, so the process can stop with a non-zero exit (systemd then
    restarts it) instead of running on without alerts.

    Connection problems (DNS, refused, TLS, authentication) are logged once each time the
    state changes, not at every retry.

    Args:
        url: ``mqtt://host:port`` or ``mqtts://host:port``.
        spool: where events wait; the sender owns it from now on and closes it.
        topic: prefix; events go to ``<topic>/event``, heartbeats to ``<topic>/heartbeat``.
        username, password: broker login (sent only over what the URL says: use TLS).
        tls_ca, tls_cert, tls_key: CA bundle and client certificate files (enable TLS).
        client_id: MQTT client id (default ``edge-ad-<hostname>-<pid>``; ``edge-ad run``
            passes one per instance, :func:`default_client_id`).
        keepalive: seconds.
        on_fatal: called with the exception if the sender thread ends other than by close.
    """

    def __init__(self, url: str, *, spool: Spool, topic: str = "edge-ad",
                 username: str | None = None, password: str | None = None,
                 tls_ca: str | None = None, tls_cert: str | None = None,
                 tls_key: str | None = None, client_id: str | None = None,
                 keepalive: int = 30,
                 on_fatal: Callable[[BaseException], None] | None = None) -> None:
        try:
            import paho.mqtt.client as mqtt
        except ImportError:
            raise AlertConfigError("--mqtt needs paho-mqtt (pip install 'edge-ad[mqtt]')") from None
        self.host, self.port, tls = parse_mqtt_url(url)
        self.url = url
        self.topic = topic.rstrip("/")
        self.spool = spool
        self.on_fatal = on_fatal
        self.failed: BaseException | None = None
        self.client_id = client_id or f"edge-ad-{socket.gethostname()}-{os.getpid()}"
        self._mqtt = mqtt
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._connected = False
        self._closing = False
        self._conn_state = "starting"
        self._inflight: tuple[int, int] | None = None  # (mid, seq)
        self._early_acks: set[int] = set()
        self._reported = 0   # quarantined entries already reported
        self.published = 0
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id,
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
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        self.client = client
        client.connect_async(self.host, self.port, keepalive=keepalive)
        client.loop_start()
        self._thread = threading.Thread(target=self._main, name="edge-ad-mqtt", daemon=True)
        self._thread.start()

    def _state_changed(self, state: str, level: int, message: str) -> None:
        """Log ``message`` only when the connection state differs from the last one."""
        with self._lock:
            if state == self._conn_state:
                return
            self._conn_state = state
        log.log(level, "%s", message)

    # paho callbacks (network thread): short, never call back into paho while holding the lock
    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if getattr(reason, "is_failure", False):
            self._state_changed(f"refused:{reason}", logging.ERROR,
                                f"mqtt {self.host}:{self.port} refused the login: {reason} "
                                "(check --mqtt-user, --mqtt-password-file, certificates); "
                                f"events wait in {self.spool.dir}")
            return
        self._state_changed("connected", logging.INFO,
                            f"mqtt connected to {self.host}:{self.port} as {self.client_id}")
        with self._wake:
            self._connected = True
            self._wake.notify_all()

    def _on_connect_fail(self, client: Any, userdata: Any) -> None:
        # paho calls this inside its ``except OSError`` block: the exception is at hand.
        exc = sys.exc_info()[1]
        problem = connection_problem(exc, self.host, self.port)
        self._state_changed(f"fail:{type(exc).__name__}", logging.ERROR,
                            f"mqtt: {problem}; retrying, events wait in {self.spool.dir}")

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        with self._wake:
            was = self._connected
            self._connected = False
        if was:
            self._state_changed("lost", logging.WARNING,
                                f"mqtt lost {self.host}:{self.port} ({reason}); events are "
                                f"spooled in {self.spool.dir} until it is back")

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

    def _main(self) -> None:
        try:
            self._pump()
        except BaseException as e:  # noqa: BLE001 - reported to the owner, who exits non-zero
            self.failed = e
            log.critical("mqtt sender stopped (%r): alerts can no longer be sent", e)
            if self.on_fatal is not None:
                self.on_fatal(e)

    def _pump(self) -> None:
        last_error = None
        while True:
            try:
                if self._pump_once():
                    return
                last_error = None
            except Exception as e:  # noqa: BLE001 - one bad moment must not end alerting
                if repr(e) != last_error:
                    log.exception("mqtt sender: %r; retrying in 1 s", e)
                    last_error = repr(e)
                with self._wake:
                    self._inflight = None
                    self._wake.wait(1.0)

    def _report_quarantined(self) -> None:
        for name in self.spool.quarantined[self._reported:]:
            self._reported += 1
            try:
                self.spool.put({"type": "spool_error", "time": utc_now(), "entry": name,
                                "error": "unreadable spooled event, moved to "
                                         f"{self.spool.dir / 'quarantine'}"})
            except SpoolError as e:
                log.error("spool_error event not written: %s", e)

    def _pump_once(self) -> bool:
        """Send the oldest event (or wait); True when closing."""
        with self._wake:
            while not self._closing and (not self._connected or self._inflight is not None
                                         or not self.spool.pending()):
                self._wake.wait(0.5)
            if self._closing:
                return True
        pending = self.spool.pending()
        if not pending:  # the bound dropped it meanwhile
            return False
        seq = pending[0]
        data = self.spool.read(seq)
        if data is None:  # dropped by the bound meanwhile, or quarantined
            self._report_quarantined()
            return False
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
                return False
            # NO_CONN: paho keeps the message and sends it on reconnect, in order.
            if info.mid in self._early_acks:
                self._early_acks.discard(info.mid)
                self.spool.remove(seq)
                self.published += 1
                self._inflight = None
            else:
                self._inflight = (info.mid, seq)
        return False

    def drain(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the spool to empty; True if it did."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.spool.pending():
                return True
            if not self._connected or self.failed is not None:
                return False  # nothing will move: do not hold up a shutdown
            time.sleep(0.05)
        return not self.spool.pending()

    def close(self, *, timeout: float = 2.0) -> None:
        """Give pending events up to ``timeout`` seconds while connected, then disconnect;
        the rest stays spooled. Never blocks much longer than ``timeout`` + 0.5 s, even in
        the middle of a reconnect (SIGTERM must stop the process promptly)."""
        self.drain(timeout)
        with self._wake:
            self._closing = True
            self._wake.notify_all()
        self._thread.join(timeout=0.5)
        try:
            self.client.disconnect()
        except Exception:  # noqa: BLE001 - best effort on the way out
            pass
        # paho's loop_stop waits for a reconnect back-off (up to 1 s) or a DNS lookup: its
        # network thread is a daemon, so it is given a moment and then left behind.
        stopper = threading.Thread(target=self.client.loop_stop, daemon=True)
        stopper.start()
        stopper.join(0.5)
        left = len(self.spool)
        if left:
            log.warning("mqtt: %d events left in %s, sent at the next start", left, self.spool.dir)
        self.spool.close()


class Alerts:
    """Turns decisions into events: ``alarm_start`` / ``alarm_end`` on each change of the
    alarm, ``no_signal_start`` / ``no_signal_end`` on each change of the input check (a dead
    microphone, never reported as a broken machine), a ``heartbeat`` every ``heartbeat_s``
    seconds (monotonic clock) with the current score, and problems of the device itself
    (``output_error``).

    Open states survive a restart: the spool's state file records an ``alarm_start`` (and a
    ``no_signal_start``) until its end is written. A new :class:`Alerts` over a spool with an
    open alarm writes ``alarm_end`` with ``"reason": "restart"`` at once, so no alarm is ever
    left dangling and a persisting fault raises a fresh, complete ``alarm_start``.

    Args:
        spool: every event goes here first.
        sinks: told after each event (:class:`Sink`, e.g. an :class:`MqttSender`).
        heartbeat_s: seconds between heartbeats (0 = none).
        context: fields added to every event (host, device, model file).
    """

    OPEN = {"alarm": ("alarm_start", "alarm_end"), "no_signal": ("no_signal_start", "no_signal_end")}

    def __init__(self, spool: Spool, *, sinks: tuple[Sink, ...] | list[Sink] = (),
                 heartbeat_s: float = 60.0, context: dict[str, Any] | None = None) -> None:
        self.spool = spool
        self.sinks = list(sinks)
        self.heartbeat_s = heartbeat_s
        self.context = dict(context or {})
        self._alarm = False
        self._no_signal = False
        self._last_beat: float | None = None
        for key, (_, end) in self.OPEN.items():
            opened = spool.state.get(key)
            if isinstance(opened, dict):
                log.warning("%s #%s was open when edge-ad stopped; closing it (reason: restart)",
                            self.OPEN[key][0], opened.get("seq"))
                self._put({"type": end, "time": utc_now(), "reason": "restart",
                           "start_seq": opened.get("seq"), "start_time": opened.get("time"),
                           **self.context}, state={key: None})

    def _put(self, event: dict[str, Any], *, state: dict[str, Any] | None = None) -> int | None:
        try:
            seq = self.spool.put(event, state=state)
        except SpoolError as e:
            # Alerts must never stop detection: the decision lines go on regardless.
            log.error("%s not sent: %s", event["type"], e)
            return None
        for sink in self.sinks:
            sink.notify()
        return seq

    def _emit(self, kind: str, d: Decision, *, state: dict[str, Any] | None = None) -> None:
        event = {"type": kind, "time": utc_now(), "decision_time": d.time,
                 "stream_seconds": d.stream_seconds, "score": d.score, "cutoff": d.cutoff,
                 "anomaly": d.anomaly, "alarm": d.alarm, **self.context}
        if d.no_signal:
            event["no_signal"] = d.no_signal
        seq = self._put(event, state=state)
        if seq is not None:
            log.log(logging.WARNING if kind != HEARTBEAT else logging.DEBUG,
                    "%s #%d score %.4g cutoff %.4g", kind, seq, d.score, d.cutoff)

    def _opened(self, d: Decision) -> Callable[[int], dict[str, Any]]:
        return lambda seq: {"seq": seq, "time": d.time, "stream_seconds": d.stream_seconds}

    def observe(self, d: Decision) -> None:
        no_signal = bool(d.no_signal)
        if no_signal != self._no_signal:
            self._no_signal = no_signal
            self._emit("no_signal_start" if no_signal else "no_signal_end", d,
                       state={"no_signal": self._opened(d) if no_signal else None})
        if d.alarm != self._alarm:
            self._alarm = d.alarm
            self._emit("alarm_start" if d.alarm else "alarm_end", d,
                       state={"alarm": self._opened(d) if d.alarm else None})
        if self.heartbeat_s > 0 and (self._last_beat is None
                                     or d.monotonic - self._last_beat >= self.heartbeat_s):
            self._last_beat = d.monotonic
            self._emit(HEARTBEAT, d)

    def event(self, kind: str, **fields: Any) -> None:
        """Any other event (``model_changed``: the model version in use after a bundle is
        replaced)."""
        self._put({"type": kind, "time": utc_now(), **fields, **self.context})

    def problem(self, kind: str, message: str) -> None:
        """An event about the device itself (``output_error``: a decision output failed)."""
        self._put({"type": kind, "time": utc_now(), "error": message, **self.context})


#: URL schemes -> the sink class that serves them. A webhook or Home Assistant sink is one
#: more entry (a class taking ``(url, spool=..., **options)`` with notify/close/failed).
SINKS: dict[str, str] = {"mqtt": "MqttSender", "mqtts": "MqttSender", "tcp": "MqttSender",
                         "ssl": "MqttSender"}


def open_sink(url: str, *, spool: Spool, **options: Any) -> Sink:
    """The :class:`Sink` for ``url``'s scheme, sending what ``spool`` holds."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else "mqtt"
    try:
        cls = globals()[SINKS[scheme]]
    except KeyError:
        raise AlertConfigError(f"--mqtt {url!r}: no alert sink for {scheme}://; expected one "
                               f"of {sorted(SINKS)}") from None
    return cls(url, spool=spool, **options)


def read_password(path: str) -> str:
    """The first line of a password file (kept out of the command line and the unit file)."""
    try:
        return Path(path).read_text().splitlines()[0].strip() if Path(path).stat().st_size else ""
    except OSError as e:
        raise AlertConfigError(f"{path}: cannot read MQTT password file ({e.strerror})") from None


def event_json(event: dict[str, Any]) -> str:
    return json.dumps(event, separators=(",", ":"))
