"""Model runtimes behind one two-method seam: ``load(path)`` and ``Backend.run(x)``.

``load`` picks the runtime by the file's suffix (``.tflite``: ai-edge-litert, falling back
to tflite-runtime; ``.onnx``: onnxruntime; ``.adq8``: edge-ad's own C int8 kernel, numpy
and cffi only). Each runtime is imported only when a model of
its kind is loaded, so a board with one runtime never needs the other.

``Backend.run(x: (n, d) float32) -> (n, d) float32`` always speaks float: an int8 model's
input is quantised and its output dequantised with the parameters stored in the model.
The clip score compares that float output with the original float input (SPEC 4).
"""
from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from ..errors import BackendError

SUFFIXES = {".tflite": "tflite", ".onnx": "onnx", ".adq8": "c"}


@runtime_checkable
class Backend(Protocol):
    """A loaded model. ``name`` says which runtime runs it (e.g. ``"ai-edge-litert"``)."""

    name: str
    path: Path
    precision: str      # "int8" or "float": from the model's input/weight types

    def run(self, x: np.ndarray) -> np.ndarray:
        """Reconstruct vectors: ``(n, d) float32 -> (n, d) float32``."""
        ...


def load(path: str | Path, *, num_threads: int = 1) -> Backend:
    """Load a ``.tflite``, ``.onnx`` or ``.adq8`` model with the runtime for its suffix.

    Args:
        path: the model file.
        num_threads: CPU threads the runtime may use (1: leave the other cores to audio
            capture and the front end).

    Raises:
        BackendError: unknown suffix, no runtime installed for it, or a model the runtime
            refuses (the message names the file).
    """
    path = Path(path)
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise BackendError(f"{path}: unknown model type {path.suffix!r}; "
                           f"expected one of {sorted(SUFFIXES)}")
    if num_threads < 1:
        raise BackendError(f"num_threads={num_threads}: expected at least 1")
    if not path.is_file():
        raise BackendError(f"{path}: model file not found")
    if kind == "c":
        from .c import CBackend
        return CBackend(path)
    if kind == "tflite":
        from .tflite import TFLiteBackend
        return TFLiteBackend(path, num_threads=num_threads)
    from .onnx import ONNXBackend
    return ONNXBackend(path, num_threads=num_threads)


def check_input(x: np.ndarray, width: int, path: Path) -> np.ndarray:
    """``x`` as a C-contiguous ``(n, width) float32`` array, or a clear error."""
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] != width:
        raise BackendError(f"{path.name}: input of shape {x.shape}; expected (n, {width})")
    return np.ascontiguousarray(x, dtype=np.float32)


__all__ = ["Backend", "load", "SUFFIXES"]
