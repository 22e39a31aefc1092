"""One exception root for edge-ad, each error also a matching builtin.

Exit codes are part of the CLI contract (schedulers and systemd read them), so they
live here next to the errors that produce them.
"""
from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURE = 1          # unexpected failure (a bug): traceback on stderr
EXIT_BAD_INPUT = 2        # bad file, value or argument: one clear line on stderr
EXIT_GATE_FAILED = 3      # export: int8 lost more accuracy than allowed, no bundle written
EXIT_BUNDLE_INVALID = 4   # bundle failed verification (hash, missing file, spec digest)
EXIT_DEVICE = 5           # audio device missing or busy
EXIT_OUTPUT = 6           # an output could not be written (disk full, file-size limit, EIO)
EXIT_ALERTS = 7           # run: the alert sender stopped; exit so the service is restarted
EXIT_FLEET_PARTIAL = 8    # fleet: some machines failed, the others were trained or kept
EXIT_INTERRUPTED = 130


class EdgeAdError(Exception):
    """Root of every error edge-ad raises on purpose."""

    exit_code = EXIT_BAD_INPUT


class AudioError(EdgeAdError, ValueError):
    """An audio file or stream that cannot be used (empty, truncated, not audio, ...)."""


class SpecMismatchError(EdgeAdError, ValueError):
    """Features or a model made with a different FeatureSpec than expected."""


class DatasetError(EdgeAdError, ValueError):
    """A dataset folder that does not fit any known layout."""


class BundleError(EdgeAdError, ValueError):
    """A model bundle that fails verification."""

    exit_code = EXIT_BUNDLE_INVALID


class BundleNotFoundError(BundleError):
    """The bundle path names no folder: a wrong argument (exit 2), not a damaged bundle."""
    exit_code = EXIT_BAD_INPUT


class BackendError(EdgeAdError, RuntimeError):
    """A model runtime that is not installed, or that refuses a model file or an input."""


class QuantizationGateError(EdgeAdError, RuntimeError):
    """int8 lost more accuracy against float than the gate allows."""

    exit_code = EXIT_GATE_FAILED


class DeviceError(EdgeAdError, OSError):
    """An audio capture device that is missing, busy or failed."""

    exit_code = EXIT_DEVICE


class FrontendError(EdgeAdError, RuntimeError):
    """The C front end refused its configuration (a bad spec or table)."""


class ThresholdError(EdgeAdError, ValueError):
    """Scores that cannot give a cutoff (too few, non-positive, identical) or a bad threshold file."""


class SettingError(EdgeAdError, ValueError):
    """An option value outside what it can be (a window too short to hold one vector, ...)."""


class OutputError(EdgeAdError, OSError):
    """An output that cannot be written (disk full, a file-size limit, an I/O error)."""

    exit_code = EXIT_OUTPUT
