"""Export: BatchNorm folding, ONNX and TFLite conversion, int8 quantisation, the accuracy
gate and the bundle. Heavy libraries (torch, onnx, TensorFlow) are imported by the
submodules that need them."""
from __future__ import annotations

from .pipeline import FORMATS, PRECISIONS, calibration_vectors, export_run

__all__ = ["FORMATS", "PRECISIONS", "calibration_vectors", "export_run"]
