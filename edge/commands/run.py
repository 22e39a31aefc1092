"""``edge-ad run``: stream audio from a device, file or stdin and emit one decision a step.

Imports only the light side (numpy, cffi front end, a model runtime, and lazily alsaaudio
and paho-mqtt), so it starts fast on a board; a test proves torch and scipy stay out.
"""
from __future__ import annotations

import argparse
import logging
import signal
import socket
import sys
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

log = logging.getLogger("edge.run")

# Input check (see edge.decision.SignalCheck): documented defaults of the options.
NO_SIGNAL_PTP = 8
NO_SIGNAL_CLIP = 0.25

EXAMPLE = """examples:
  edge-ad run --device hw:1 --model bundle/ --alarm 3/5 --mqtt mqtt://broker.local
  arecord -D plughw:1 -f S16_LE -r 16000 -c 1 -t raw | edge-ad run --device - --model bundle/
  edge-ad run --device recording.wav --fast --model bundle/ --json-out decisions.jsonl
"""


from ..options import threads_arg  # noqa: E402  (re-exported for the other commands)


def add_common_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", choices=("c", "tflite", "onnx"),
                   help="model runtime: c (edge-ad's C int8 kernel, no ML runtime needed), "
                        "tflite or onnx (default: c for int8 where the bundle has the C "
                        "network, else tflite)")
    p.add_argument("--precision", choices=("int8", "float"), default="int8",
                   help="which model file of the bundle (default: int8)")
    p.add_argument("--threads", type=threads_arg, default=1,
                   help="model runtime threads, 1 to the cores present (default: 1, leaves "
                        "cores for capture)")


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "run", help="stream audio from a device, file or stdin and emit decisions",
        description="Score a rolling window of live audio every step; one JSON line per "
                    "decision on stdout (or --json-out), logs on stderr.",
        epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", required=True,
                   help="ALSA PCM (hw:1, hw:1,0, plughw:1, default), a WAV/FLAC file, or - for "
                        "raw S16_LE mono 16 kHz on stdin")
    p.add_argument("--model", required=True, metavar="BUNDLE", help="bundle directory (edge-ad export)")
    add_common_model_args(p)
    p.add_argument("--window", default="10s", help="scored window (default 10s, a training clip)")
    p.add_argument("--every", default="1s", help="audio time between decisions (default 1s)")
    p.add_argument("--alarm", default="1/1", metavar="K/N",
                   help="alarm when K of the last N decisions are anomalous (default 1/1)")
    p.add_argument("--json-out", metavar="FILE",
                   help="append decision lines here instead of stdout (default: stdout)")
    p.add_argument("--fast", action="store_true", help="file source: read as fast as possible")
    p.add_argument("--loop", action="store_true", help="file source: start over at the end")
    p.add_argument("--max-seconds", type=float, metavar="S",
                   help="stop after S seconds of audio (default: run until the source ends)")
    p.add_argument("--no-signal-ptp", type=int, default=NO_SIGNAL_PTP, metavar="COUNTS",
                   help="a step (--every) whose int16 samples span at most this many counts peak "
                        "to peak makes its window no_signal: digital silence or a stuck DC value "
                        f"(default {NO_SIGNAL_PTP}; -1 = off)")
    p.add_argument("--no-signal-clip", type=float, default=NO_SIGNAL_CLIP, metavar="FRACTION",
                   help="a step (--every) with at least this fraction of samples at full scale "
                        f"(-32768 or 32767) makes its window no_signal: clipping (default {NO_SIGNAL_CLIP})")
    g = p.add_argument_group("alerts (MQTT)")
    g.add_argument("--mqtt", metavar="URL",
                   help="broker, mqtt://host[:1883] or mqtts://host[:8883] (default: no alerts)")
    g.add_argument("--mqtt-topic", default=f"edge-ad/{socket.gethostname()}",
                   help="topic prefix; events on PREFIX/event, heartbeats on PREFIX/heartbeat "
                        "(default edge-ad/HOSTNAME)")
    g.add_argument("--mqtt-user", help="broker user name (default: none, anonymous)")
    g.add_argument("--mqtt-password-file", metavar="F",
                   help="file whose first line is the password (default: none)")
    g.add_argument("--mqtt-tls-ca", metavar="F",
                   help="CA certificate(s) to verify the broker (PEM; default: the system's "
                        "for mqtts://)")
    g.add_argument("--mqtt-tls-cert", metavar="F", help="client certificate (PEM; default: none)")
    g.add_argument("--mqtt-tls-key", metavar="F", help="client key (PEM; default: none)")
    g.add_argument("--heartbeat", default="60s", help="time between heartbeats (default 60s, 0 = none)")
    g.add_argument("--mqtt-client-id", metavar="ID",
                   help="MQTT client id, unique per broker (default edge-ad-HOST-<8 hex of the "
                        "bundle path, device and topic>: one per instance)")
    g.add_argument("--spool", metavar="DIR",
                   help="events wait here while the broker is away; one process per spool "
                        "(default: CLIENT-ID under /var/spool/edge-ad, or under "
                        "~/.local/state/edge-ad/spool where that is not writable)")
    g.add_argument("--spool-max-events", type=int, default=10000, help="spool bound (default 10000)")


def open_bundle(args: argparse.Namespace) -> Any:
    """Verify the bundle, then load the chosen model: a :class:`edge.detector.BundleDetector`."""
    from ..follow import load

    return load(args.model, backend=args.backend, precision=args.precision, threads=args.threads)


def handover(old: Any, new: Any, block: Any, stats: Any) -> tuple[list[Any], bool]:
    """Push ``block`` to the detector in use (``old``) and its successor (``new``, started
    at a decision boundary). Until ``new``'s window is full, ``old`` decides; the first
    decision ``new`` makes is the switch: ``old`` gets only the samples before it, and
    ``new``'s decisions take the alarm state over. Returns (decisions, switched)."""
    import dataclasses

    new_ds = new.push(block, stats)
    if not new_ds:
        return old.push(block, stats), False
    first = int(round(new_ds[0].stream_seconds * new.spec.sample_rate))
    old_ds = old.push(block[:max(0, first - old.samples - 1)], stats)
    alarm = old.alarm       # the K-of-N history goes on across the switch
    fixed = [dataclasses.replace(d, alarm=alarm.update(d.anomaly) if d.no_signal is None
                                 else alarm.active) for d in new_ds]
    new.alarm = alarm
    return old_ds + fixed, True


def default_spool_dir(client_id: str) -> "Path":
    """Where ``--spool`` defaults to: one folder per client id (per instance), under
    ``$EDGE_AD_SPOOL_ROOT``, else ``/var/spool/edge-ad`` where it can be written, else
    ``$XDG_STATE_HOME/edge-ad/spool`` (``~/.local/state``)."""
    import os
    from pathlib import Path

    root = os.environ.get("EDGE_AD_SPOOL_ROOT")
    if not root:
        system = Path("/var/spool/edge-ad")
        if os.access(system if system.exists() else system.parent, os.W_OK):
            root = str(system)
        else:
            state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
            root = str(Path(state) / "edge-ad" / "spool")
    return Path(root) / client_id


def run(args: argparse.Namespace) -> int:
    t0 = time.monotonic()
    import math

    from ..capture import open_source
    from ..decision import AlarmRule, SignalCheck, parse_duration
    from ..errors import EXIT_ALERTS, EXIT_OUTPUT, EdgeAdError
    from ..output import LineWriter
    from ..stream import Detector

    window_s = parse_duration(args.window, what="--window")
    every_s = parse_duration(args.every, what="--every")
    rule = AlarmRule.parse(args.alarm)
    check = SignalCheck(max_ptp=args.no_signal_ptp, clip_fraction=args.no_signal_clip)
    # Checked up front even without --mqtt: a typo should fail at once, not on the day
    # alerts are switched on.
    heartbeat_s = 0.0 if args.heartbeat in ("0", "0s") else parse_duration(args.heartbeat, what="--heartbeat")
    if args.max_seconds is not None and not (math.isfinite(args.max_seconds) and args.max_seconds > 0):
        raise EdgeAdError(f"--max-seconds {args.max_seconds:g}: expected seconds above 0, "
                          "finite (leave it out to run until the source ends)")
    if args.spool_max_events < 1:
        raise EdgeAdError(f"--spool-max-events {args.spool_max_events}: expected at least 1")
    asked_backend = args.backend
    current = open_bundle(args)
    bundle, model_path, threshold, backend = (current.bundle, current.model_path,
                                              current.threshold, current.backend)
    from ..stream import window_vectors

    window_vectors(window_s, spec=bundle.spec)   # a window too short to score: refused before capture

    stopping: list[str] = []
    fatal: list[BaseException] = []
    source: Any = None
    alerts = sender = None
    if args.mqtt:
        from ..alerts import Alerts, default_client_id, open_sink, parse_mqtt_url, read_password
        from ..spool import Spool

        parse_mqtt_url(args.mqtt)   # a bad URL is refused before a spool is made for it
        client_id = args.mqtt_client_id or default_client_id(
            str(bundle.path.resolve()), args.device, args.mqtt_topic)
        password = read_password(args.mqtt_password_file) if args.mqtt_password_file else None
        spool = Spool(args.spool or default_spool_dir(client_id), max_events=args.spool_max_events)

        def on_fatal(e: BaseException) -> None:
            # The sender is gone: stop, so systemd restarts a process that can alert.
            fatal.append(e)
            if source is not None:
                source.stop()

        try:
            sender = open_sink(args.mqtt, spool=spool, topic=args.mqtt_topic,
                               username=args.mqtt_user, password=password,
                               tls_ca=args.mqtt_tls_ca, tls_cert=args.mqtt_tls_cert,
                               tls_key=args.mqtt_tls_key, client_id=client_id, on_fatal=on_fatal)
        except BaseException:
            spool.close()
            raise
        alerts = Alerts(spool, sinks=[sender], heartbeat_s=heartbeat_s,
                        context={"host": socket.gethostname(), "device": args.device,
                                 "model": model_path.name, "model_version": current.version})

    source = None
    try:
        source = open_source(args.device, spec=bundle.spec, fast=args.fast, loop=args.loop)
        detector = Detector(backend, cutoff=threshold.cutoff, spec=bundle.spec, window_s=window_s,
                            every_s=every_s, alarm=rule, signal_check=check, head=current.head)
        detector.model_version = current.version
        out = LineWriter(args.json_out)
    except BaseException:
        if source is not None:       # an ALSA device opened must not stay open
            source.close()
        if sender is not None:
            sender.close(timeout=0.0)
        raise
    if fatal:
        source.stop()

    def on_signal(signum: int, frame: Any) -> None:
        # Only a flag and a stop request here: the loop finishes the block in hand, so the
        # decision being made is written and flushed before the process exits.
        stopping.append(signal.Signals(signum).name)
        source.stop()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    hup: list[int] = []
    old[signal.SIGHUP] = signal.signal(signal.SIGHUP, lambda signum, frame: hup.append(signum))
    from ..follow import BundleFollower

    follower = BundleFollower(
        args.model, current, backend=asked_backend, precision=args.precision, threads=args.threads,
        on_error=(lambda m: alerts.problem("model_rejected", m)) if alerts is not None else
        (lambda m: None))
    pending: Any = None      # a verified new bundle, waiting for the next decision boundary
    successor: Any = None    # its detector, filling its window while the old one decides
    max_samples = None if args.max_seconds is None else int(args.max_seconds * bundle.spec.sample_rate)
    log.info("%s: %s (%s), cutoff %.6g, window %.3g s = %d vectors, every %.3g s, alarm %s; "
             "ready in %.2f s", source.name, model_path.name, backend.name, threshold.cutoff,
             window_s, detector.n_window, every_s, rule, time.monotonic() - t0)
    n_decisions = 0
    output_failed = False
    try:
        for block in source:
            if max_samples is not None:
                block = block[:max(0, max_samples - detector.samples)]
            decisions = []
            if pending is not None and successor is None and detector.samples_to_decision <= len(block):
                # Start the new model right after a decision of the old one.
                n = detector.samples_to_decision
                decisions += detector.push(block[:n], source.stats)
                block = block[n:]
                successor = detector.successor(pending.backend, cutoff=pending.threshold.cutoff,
                                               head=pending.head)
                successor.model_version = pending.version
                log.info("new bundle %s (model %s, %s) verified; it takes over once its %.3g s "
                         "window is full, from stream second %.6f", pending.bundle.path,
                         pending.version[:16], pending.model_path.name, window_s,
                         detector.stream_seconds)
            if successor is not None:
                more, switched = handover(detector, successor, block, source.stats)
                decisions += more
                if switched:
                    detector, successor, current = successor, None, pending
                    pending = None
                    follower.accept(current)
                    log.info("switched to model %s (%s, cutoff %.6g) at stream second %.6f",
                             current.version[:16], current.model_path.name,
                             current.threshold.cutoff, decisions[-1].stream_seconds)
                    if alerts is not None:
                        alerts.context.update(model=current.model_path.name,
                                              model_version=current.version)
                        alerts.event("model_changed", version=current.version,
                                     file=current.model_path.name, created=current.created,
                                     bundle=str(current.bundle.path))
            else:
                decisions += detector.push(block, source.stats)
            if pending is None and (hup or decisions):
                if hup:
                    log.info("SIGHUP: verifying the bundle at %s again", args.model)
                pending = follower.poll(force=bool(hup))
                hup.clear()
            for d in decisions:
                n_decisions += 1
                if alerts is not None:
                    alerts.observe(d)
                if not out.write_line(d.to_json()):
                    if out.reader_gone:
                        stopping.append("closed output pipe")  # `| head`: the reader is done
                        source.stop()
                        break
                    output_failed = True
                    if out.error_is_new:
                        if alerts is not None:
                            alerts.problem("output_error", out.error)
                        if args.json_out is None and alerts is None:
                            stopping.append("output error")  # nothing left to tell anyone
                            source.stop()
            if stopping or fatal or (max_samples is not None and detector.samples >= max_samples):
                break
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        source.close()
        if sender is not None:
            # After a signal: the events stay spooled for the next start; do not hold up
            # the stop (systemd kills what takes longer than its timeout).
            sender.close(timeout=0.3 if stopping else 2.0)
        out.close()
    if n_decisions == 0:
        log.warning("no decision: %.1f s of audio arrived; a %.3g s window needs about %.2f s",
                    detector.stream_seconds, window_s,
                    (bundle.spec.n_fft + (detector.n_window + bundle.spec.context_frames - 2)
                     * bundle.spec.hop_length) / bundle.spec.sample_rate)
    why = (f"on {stopping[0]}" if stopping else
           f"at --max-seconds {args.max_seconds:g}" if max_samples is not None
           and detector.samples >= max_samples else "at the end of the source")
    log.info("stopped %s after %.1f s of audio, %d decisions, %s", why, detector.stream_seconds,
             n_decisions, source.stats.to_dict())
    if fatal or (sender is not None and sender.failed is not None):
        print(f"edge-ad run: error: the alert sender stopped ({(fatal or [sender.failed])[0]!r}); "
              f"exiting with {EXIT_ALERTS} so the service is restarted", file=sys.stderr)
        return EXIT_ALERTS
    if output_failed:
        print(f"edge-ad run: error: {out.failed_lines} decision line(s) lost on {out.name} "
              f"(see the first error above); exit {EXIT_OUTPUT}", file=sys.stderr)
        return EXIT_OUTPUT
    return 0
