"""ONNX models of the folded MLP: float with torch's exporter, int8 with onnxruntime's
static quantisation (QDQ, per-channel weights, activations calibrated on training vectors).

int8 choice: unsigned 8-bit activations and weights (onnxruntime's "U8U8"), asymmetric,
weights per channel.

Why not S8S8 (onnxruntime's first recommendation): on an x86 CPU without VNNI (AVX2
only: Haswell to Zen 3, many CI runners), onnxruntime multiplies activations by s8 weights
with ``vpmaddubsw``, which adds each pair of products into a *saturating* 16-bit lane (S8
activations are shifted to u8 first); two products of 255 x 127 overflow it. The int8
scores then depend on the CPU: on one model they correlated 0.99995 with float on an
AVX-512 VNNI CPU but 0.99962 under ``qemu-x86_64 -cpu Haswell``, one clip off by 4.8 %.
Two ways avoid it, both measured on a 2-core AMD EPYC (AVX-512 VNNI) and under the
emulated Haswell, bit-identical on both:

- 7-bit signed weights (``reduce_range``): a pair is at most 2 x 255 x 64 = 32640. Fast
  (446 us per 10 s clip against 1150 us in float), but the lost bit cost accuracy: score
  correlation with float 0.99982 on a small test model, below the 0.9999 the bundle promises.
- U8U8: onnxruntime's u8 x u8 kernels widen to 16 bits before multiplying, so nothing
  saturates, and asymmetric per-channel weights use all 8 bits: correlation 0.999994 on that
  model. 890 us per clip and 108 us per decision of 31 vectors, against 1150 and 129 us in
  float: slower than S8S8, still faster than float. Chosen: the promise is the same scores
  everywhere. (TFLite, the board's runtime, stays S8S8: its kernels never saturate.)

Arm's UDOT/UMMLA paths are exact too, so the board computes the same integers.
"""
from __future__ import annotations

import contextlib
import io
import logging
import tempfile
import warnings
from pathlib import Path

import numpy as np

from .fold import Dense, folded_module

log = logging.getLogger(__name__)

OPSET = 18
INPUT_NAME = "x"
OUTPUT_NAME = "recon"
# U8U8: no x86 int8 kernel saturates (see the module docstring). Keys of quantize_static.
QUANTIZATION = {"activation_type": "QUInt8", "weight_type": "QUInt8", "reduce_range": False,
                "weight_symmetric": False}


def export_float(layers: list[Dense], path: str | Path, *, opset: int = OPSET) -> None:
    """Write the folded MLP as a float ONNX model with a dynamic batch axis.

    Input ``x: (batch, in) float32``, output ``recon: (batch, out) float32``. Node metadata
    that the exporter fills with source paths and stack traces is removed, so the bytes
    depend only on the weights (the same export on another machine gives the same file).
    """
    import onnx
    import torch

    module = folded_module(layers)
    example = torch.zeros(2, layers[0].weight.shape[1])
    batch = torch.export.Dim("batch")
    # Its registry warns once per missing optional package (torchvision ops) on every export.
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    sink = io.StringIO()
    # The exporter prints progress on stdout; `edge-ad export --json` owns stdout.
    with warnings.catch_warnings(), contextlib.redirect_stdout(sink):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(module, (example,), dynamo=True, opset_version=opset,
                                    input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                    dynamic_shapes=({0: batch},), external_data=False,
                                    verbose=False, optimize=True)
    model = program.model_proto
    _strip_metadata(model)
    onnx.checker.check_model(model, full_check=True)
    onnx.save_model(model, str(path), save_as_external_data=False)


def _strip_metadata(model) -> None:
    """Drop doc strings and metadata that name the export machine (paths, stack traces)."""
    del model.metadata_props[:]
    model.doc_string = ""
    model.graph.doc_string = ""
    for node in model.graph.node:
        del node.metadata_props[:]
        node.doc_string = ""
    for value in [*model.graph.input, *model.graph.output, *model.graph.value_info]:
        del value.metadata_props[:]
        value.doc_string = ""
    for tensor in model.graph.initializer:
        del tensor.metadata_props[:]
        tensor.doc_string = ""


class _VectorReader:
    """onnxruntime's CalibrationDataReader over an array of vectors, in batches."""

    def __init__(self, vectors: np.ndarray, *, batch: int = 256):
        self._vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self._batch = batch
        self._start = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._start >= len(self._vectors):
            return None
        chunk = self._vectors[self._start:self._start + self._batch]
        self._start += self._batch
        return {INPUT_NAME: chunk}

    def rewind(self) -> None:
        self._start = 0


def quantize_int8(float_path: str | Path, int8_path: str | Path, calibration: np.ndarray) -> None:
    """Statically quantise a float ONNX model to 8-bit QDQ (:data:`QUANTIZATION`).

    Args:
        float_path: the model written by :func:`export_float`.
        int8_path: where the int8 model goes.
        calibration: ``(n, in) float32`` training vectors; activation ranges are their
            min/max through the network (MinMax, the TFLite converter's method too).
    """
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat,
                                          QuantType, quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(_VectorReader, CalibrationDataReader):
        pass

    with tempfile.TemporaryDirectory(prefix="edge-ad-onnx-") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        # onnxruntime's recommended pre-processing (shape inference, graph clean-up); the
        # symbolic pass is for dynamic shapes of transformer-style graphs, not needed here.
        quant_pre_process(str(float_path), str(prepared), skip_symbolic_shape=True)
        # The quantiser logs "consider pre-processing" on the root logger even when done.
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)
        try:
            quantize_static(
                str(prepared), str(int8_path), Reader(calibration),
                quant_format=QuantFormat.QDQ, per_channel=True,
                activation_type=QuantType[QUANTIZATION["activation_type"]],
                weight_type=QuantType[QUANTIZATION["weight_type"]],
                reduce_range=QUANTIZATION["reduce_range"],
                calibrate_method=CalibrationMethod.MinMax,
                extra_options={"ActivationSymmetric": False,
                               "WeightSymmetric": QUANTIZATION["weight_symmetric"]},
            )
        finally:
            root.setLevel(level)
    import onnx

    model = onnx.load(str(int8_path))
    _strip_metadata(model)
    onnx.checker.check_model(model, full_check=True)
    onnx.save_model(model, str(int8_path), save_as_external_data=False)
