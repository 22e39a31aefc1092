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

# name -> one-line help, in the order --help lists them. The board's own commands are
# modules of edge (EDGE_MODULES); the training side's are found through the entry points
# it registers ("edge_ad.commands" in pyproject.toml), so importing edge never imports train.
COMMANDS: dict[str, str] = {
    "features": "compute context vectors of recordings (.npy)",
    "synth": "generate a synthetic plant in MIMII layout",
    "train": "train the autoencoder and a detector head on normal clips",
    "evaluate": "per-ID AUC/pAUC table, detectors side by side, figures and report",
    "export": "quantise to int8 TFLite/ONNX and write a verified bundle",
    "fleet": "train and export one model per machine type on a Dask cluster",
    "score": "score recordings with a bundle",
    "run": "stream audio from a device, file or stdin and emit decisions",
    "calibrate": "refit the cutoff on site from normal operation",
    "bench": "latency and accuracy, float against int8",
    "demo": "the whole job end to end on a synthetic plant",
}
EDGE_MODULES = {name: f"edge.commands.{name}" for name in ("features", "score", "run", "calibrate")}
ENTRY_POINTS = "edge_ad.commands"
#: third-party modules of the training side, and the pyproject extra that installs each
EXTRA_OF = {"torch": "train", "scipy": "train", "sklearn": "train", "matplotlib": "train",
            "onnx": "export", "onnxscript": "export", "onnxruntime": "onnx",
            "tensorflow": "tensorflow", "dask": "fleet", "distributed": "fleet",
            "alsaaudio": "alsa", "paho": "mqtt"}


class MissingExtraError(EdgeAdError, ImportError):
    """A command whose optional dependencies are not installed here."""


def _missing_extra(command: str, e: ModuleNotFoundError) -> MissingExtraError:
    top = (e.name or "").split(".")[0]
    extra = EXTRA_OF.get(top, "train" if top == "train" else "all")
    what = "the training side" if top == "train" else f"module {top!r}"
    return MissingExtraError(f"needs {what}, which is not installed here; install it with "
                             f"pip install 'edge-ad[{extra}]'")


def _command_module(name: str) -> object:
    """Import the module of command ``name`` (MissingExtraError where it is not installed)."""
    if name in EDGE_MODULES:
        return importlib.import_module(EDGE_MODULES[name])
    from importlib.metadata import entry_points

    found = [ep for ep in entry_points(group=ENTRY_POINTS) if ep.name == name]
    try:
        if not found:
            raise ModuleNotFoundError(name="train")
        return found[0].load()
    except ModuleNotFoundError as e:
        raise _missing_extra(name, e) from None


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
    for name, help_text in COMMANDS.items():
        module = None
        if name == wanted:
            try:
                module = _command_module(name)
            except MissingExtraError as e:
                modules[name] = e        # reported as one line once the arguments parse
        if module is not None:
            module.add_parser(sub)
            modules[name] = module
        else:
            sub.add_parser(name, help=help_text, add_help=False)
    return parser, modules


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, modules = build_parser(argv)
    for name, module in modules.items():
        if isinstance(module, MissingExtraError) and "-h" not in argv and "--help" not in argv:
            print(f"edge-ad {name}: error: {module}", file=sys.stderr)
            return module.exit_code
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
        module = modules[args.command]
        try:
            code = int(module.run(args) or 0)
        except ModuleNotFoundError as e:
            # torch, TensorFlow, ... are imported inside the command that needs them
            if (e.name or "").split(".")[0] not in EXTRA_OF:
                raise
            raise _missing_extra(args.command, e) from None
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
