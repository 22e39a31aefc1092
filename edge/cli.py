"""The ``edge-ad`` command: one thin entry point that parses, then calls library code.

Each subcommand lives in its own module with ``add_parser(subparsers)`` and
``run(args) -> int``. Modules are imported only when their command runs, so
``edge-ad run --help`` works on a bare board without torch, TensorFlow or the training side.
"""
from __future__ import annotations

import argparse
import errno
import importlib
import logging
import os
import signal
import sys

from . import __version__
from .errors import EXIT_INTERRUPTED, EXIT_OUTPUT, EdgeAdError

OUTPUT_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EIO, errno.EROFS}

# name -> (module, one-line help). Training-side commands live in ``train`` and are
# looked up by name only, so importing edge never imports train.
COMMANDS: dict[str, tuple[str, str]] = {
    "features": ("edge.commands.features", "compute context vectors of recordings (.npy)"),
    "synth": ("train.commands.synth", "generate a synthetic plant in MIMII layout"),
    "train": ("train.commands.train", "train the autoencoder on normal clips"),
    "evaluate": ("train.commands.evaluate", "per-ID AUC/pAUC table, figures and report"),
    "export": ("train.commands.export", "quantise to int8 TFLite/ONNX and write a verified bundle"),
    "fleet": ("train.commands.fleet", "train and export one model per machine type on a Dask cluster"),
    "score": ("edge.commands.score", "score recordings with a bundle"),
    "run": ("edge.commands.run", "stream audio from a device, file or stdin and emit decisions"),
    "calibrate": ("edge.commands.calibrate", "refit the cutoff on site from normal operation"),
    "bench": ("train.commands.bench", "latency and accuracy, float against int8"),
    "demo": ("train.commands.demo", "the whole job end to end on a synthetic plant"),
}



def _own_info_only(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.WARNING or record.name.split(".")[0] in ("edge", "train",
                                                                              "root", "__main__")


def build_parser(argv: list[str]) -> tuple[argparse.ArgumentParser, dict[str, object]]:
    parser = argparse.ArgumentParser(
        prog="edge-ad",
        description="Hear a machine fail: learn normal sound, score drift on the board.",
        epilog="example: edge-ad synth plant/ && edge-ad train plant/ --out run/",
    )
    parser.add_argument("--version", action="version", version=f"edge-ad {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    # Import only the module of the command asked for; list the rest by name.
    wanted = next((a for a in argv if a in COMMANDS), None)
    modules: dict[str, object] = {}
    for name, (module_name, help_text) in COMMANDS.items():
        if name == wanted:
            module = importlib.import_module(module_name)
            module.add_parser(sub)
            modules[name] = module
        else:
            sub.add_parser(name, help=help_text, add_help=False)
    return parser, modules


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, modules = build_parser(argv)
    args = parser.parse_args(argv)
    level = logging.WARNING if args.quiet else (logging.DEBUG if args.verbose > 1 else logging.INFO)
    logging.basicConfig(level=level, format="edge-ad: %(levelname)s: %(message)s", stream=sys.stderr)
    if args.verbose < 2:
        # Libraries' INFO lines (TensorFlow's saved assets, the ONNX exporter's passes) are
        # their detail, not ours: shown from -vv on.
        for handler in logging.getLogger().handlers:
            handler.addFilter(_own_info_only)
    # Progress bars only on a terminal: in a log file their carriage returns are noise.
    args.progress = not args.quiet and sys.stderr.isatty()
    if args.command is None:
        parser.print_help()
        return 0
    if hasattr(signal, "SIGXFSZ"):
        # A file-size limit (ulimit -f) is a write error (EFBIG) to report, not a kill.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    try:
        code = int(modules[args.command].run(args) or 0)
        sys.stdout.flush()   # here, not at exit: a failing stdout is reported like any output
        return code
    except EdgeAdError as e:
        print(f"edge-ad {args.command}: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"edge-ad {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _quiet_stdout()
        return 0
    except OSError as e:
        if e.errno not in OUTPUT_ERRNOS:
            raise
        # Disk full, a file-size limit or an I/O error on an output: one line and exit 6.
        where = f" {e.filename}" if e.filename else ""
        print(f"edge-ad {args.command}: error: cannot write{where} ({e.strerror}); "
              "nothing half-written is kept where the command writes atomically", file=sys.stderr)
        _quiet_stdout()
        return EXIT_OUTPUT


def _quiet_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush of what could not be
    written raises nothing more."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
