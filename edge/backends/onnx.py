"""ONNX backend: onnxruntime's CPU execution provider.

The int8 models ``edge-ad export`` writes are QDQ: float in, float out, the
QuantizeLinear/DequantizeLinear nodes (with their scales and zero points) inside the
graph, so onnxruntime applies the model's own quantisation parameters.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import BackendError
from . import check_input


class ONNXBackend:
    """An ONNX model; ``run(x: (n, d) float32) -> (n, d) float32``."""

    name = "onnxruntime"

    def __init__(self, path: str | Path, *, num_threads: int = 1):
        self.path = Path(path)
        try:
            import onnxruntime as ort
        except ImportError:
            raise BackendError("onnxruntime is not installed: pip install onnxruntime") from None
        options = ort.SessionOptions()
        options.intra_op_num_threads = num_threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(str(self.path), options,
                                                 providers=["CPUExecutionProvider"])
        except Exception as e:   # onnxruntime raises its own unexported exception types
            raise BackendError(f"{self.path}: onnxruntime cannot load the model: {e}") from None
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        if len(inputs) != 1 or len(outputs) != 1:
            raise BackendError(f"{self.path.name}: {len(inputs)} inputs and {len(outputs)} "
                               "outputs; expected one of each")
        shape = inputs[0].shape
        if (inputs[0].type != "tensor(float)" or outputs[0].type != "tensor(float)"
                or len(shape) != 2 or not isinstance(shape[1], int)):
            raise BackendError(f"{self.path.name}: input {inputs[0].type} {shape}, output "
                               f"{outputs[0].type}; expected float (batch, d) in and out")
        self._input = inputs[0].name
        self._fixed_batch = shape[0] if isinstance(shape[0], int) else None
        self.width = int(shape[1])
        self.precision = _precision(self.path)

    def run(self, x: np.ndarray) -> np.ndarray:
        """Reconstruct vectors: ``(n, d) float32 -> (n, d) float32``."""
        x = check_input(x, self.width, self.path)
        if len(x) == 0:
            return np.zeros((0, self.width), np.float32)
        if self._fixed_batch is None:
            return np.asarray(self._session.run(None, {self._input: x})[0], dtype=np.float32)
        b = self._fixed_batch
        out = np.empty_like(x)
        for start in range(0, len(x), b):
            chunk = x[start:start + b]
            m = len(chunk)
            if m < b:
                chunk = np.concatenate([chunk, np.zeros((b - m, self.width), np.float32)])
            out[start:start + m] = self._session.run(None, {self._input: chunk})[0][:m]
        return out


def _precision(path: Path) -> str:
    """``"int8"`` when the graph quantises (QDQ or QOperator nodes), else ``"float"``.

    onnxruntime lists no nodes and the board need not have the ``onnx`` package, but
    protobuf stores op types as plain strings, so a byte search finds them.
    """
    data = path.read_bytes()
    return "int8" if any(op in data for op in (b"QuantizeLinear", b"QLinearMatMul",
                                               b"MatMulInteger")) else "float"
