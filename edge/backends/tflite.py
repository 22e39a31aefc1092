"""TFLite backend: ai-edge-litert's interpreter, or tflite-runtime's on older boards.

A model with a dynamic batch (input shape signature ``[-1, d]``, what ``edge-ad export``
writes) is resized to each call's batch; a model with a fixed batch is run in chunks of it.
An int8 model with float input and output (what ``edge-ad export`` writes) quantises inside
its graph. For a model with integer input and output, the float input is quantised with the
input tensor's own scale and zero point and the output dequantised with the output tensor's:
both are read from the model, never assumed, so any int8 (or uint8) TFLite model of the
right width works.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..errors import BackendError
from ..native_output import native_stderr_to_log
from . import check_input

log = logging.getLogger(__name__)


def _interpreter_class() -> tuple[type, str]:
    try:
        from ai_edge_litert.interpreter import Interpreter
        return Interpreter, "ai-edge-litert"
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter
        return Interpreter, "tflite-runtime"
    except ImportError:
        raise BackendError("no TFLite runtime installed: pip install ai-edge-litert "
                           "(or tflite-runtime on boards it has no wheel for)") from None


def _tensor_quantization(detail: dict, path: Path, role: str) -> tuple[float, int] | None:
    """``(scale, zero_point)`` of an integer tensor, None for a float one."""
    if not np.issubdtype(detail["dtype"], np.integer):
        return None
    params = detail.get("quantization_parameters") or {}
    scales = np.asarray(params.get("scales", []))
    zeros = np.asarray(params.get("zero_points", []))
    if scales.size != 1 or zeros.size != 1 or not scales[0] > 0:
        raise BackendError(f"{path.name}: {role} tensor is {np.dtype(detail['dtype']).name} "
                           f"with {scales.size} scale(s); expected one per-tensor scale > 0")
    return float(scales[0]), int(zeros[0])


def quantize(x: np.ndarray, scale: float, zero_point: int, dtype: np.dtype) -> np.ndarray:
    """Float to integer as TFLite's QUANTIZE op does it: ``round(x / scale) + zero_point``,
    rounding half away from zero (C ``round``, not numpy's half-to-even), clamped to
    ``dtype``'s range. ``(n, d) float32 -> (n, d) dtype``.
    """
    info = np.iinfo(dtype)
    v = np.asarray(x, dtype=np.float32) / np.float32(scale)
    q = np.sign(v) * np.floor(np.abs(v) + np.float32(0.5)) + zero_point
    return np.clip(q, info.min, info.max).astype(dtype)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """``(q - zero_point) * scale``: ``(n, d) int -> (n, d) float32``."""
    return ((q.astype(np.int32) - zero_point).astype(np.float32) * np.float32(scale))


class TFLiteBackend:
    """A TFLite model; ``run(x: (n, d) float32) -> (n, d) float32``."""

    def __init__(self, path: str | Path, *, num_threads: int = 1):
        self.path = Path(path)
        interpreter_class, self.name = _interpreter_class()
        try:
            # "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." on every load
            with native_stderr_to_log(log):
                self._interp = interpreter_class(model_path=str(self.path), num_threads=num_threads)
        except (ValueError, RuntimeError) as e:
            raise BackendError(f"{self.path}: {self.name} cannot load the model: {e}") from None
        inputs = self._interp.get_input_details()
        outputs = self._interp.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise BackendError(f"{self.path.name}: {len(inputs)} inputs and {len(outputs)} "
                               "outputs; expected one of each")
        self._in, self._out = inputs[0], outputs[0]
        signature = list(self._in.get("shape_signature", self._in["shape"]))
        if len(signature) != 2:
            raise BackendError(f"{self.path.name}: input shape {signature}; expected (batch, d)")
        self.width = int(signature[1])
        self._fixed_batch = None if signature[0] == -1 else int(signature[0])
        self._in_q = _tensor_quantization(self._in, self.path, "input")
        self._out_q = _tensor_quantization(self._out, self.path, "output")
        # An int8 model with float I/O quantises inside: its weights tell the precision.
        int8_inside = any(np.dtype(d["dtype"]) == np.int8 for d in self._interp.get_tensor_details())
        self.precision = "int8" if self._in_q is not None or int8_inside else "float"
        self._batch = None
        if self._fixed_batch is not None:
            with native_stderr_to_log(log):
                self._interp.allocate_tensors()
            self._batch = self._fixed_batch

    def _resize(self, n: int) -> None:
        if self._batch != n:
            self._interp.resize_tensor_input(self._in["index"], [n, self.width], strict=True)
            if self._batch is None:     # the first allocation announces the XNNPACK delegate
                with native_stderr_to_log(log):
                    self._interp.allocate_tensors()
            else:
                self._interp.allocate_tensors()
            self._batch = n

    def _invoke(self, x: np.ndarray) -> np.ndarray:
        if self._in_q is not None:
            x = quantize(x, *self._in_q, self._in["dtype"])
        self._interp.set_tensor(self._in["index"], x)
        self._interp.invoke()
        y = self._interp.get_tensor(self._out["index"])
        if self._out_q is not None:
            return dequantize(y, *self._out_q)
        return np.asarray(y, dtype=np.float32)

    def run(self, x: np.ndarray) -> np.ndarray:
        """Reconstruct vectors: ``(n, d) float32 -> (n, d) float32`` (dequantised for int8)."""
        x = check_input(x, self.width, self.path)
        n = len(x)
        if n == 0:
            return np.zeros((0, self.width), np.float32)
        if self._fixed_batch is None:
            self._resize(n)
            return self._invoke(x)
        b = self._fixed_batch
        out = np.empty((n, self.width), np.float32)
        for start in range(0, n, b):
            chunk = x[start:start + b]
            m = len(chunk)
            if m < b:   # a fixed-batch model takes exactly b rows: pad the last chunk
                chunk = np.concatenate([chunk, np.zeros((b - m, self.width), np.float32)])
            out[start:start + m] = self._invoke(chunk)[:m]
        return out
