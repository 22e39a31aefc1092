"""TFLite models of the folded MLP, with the TensorFlow Lite converter.

The folded weights are rebuilt as a ``tf.Module`` whose ``tf.function`` has a fixed input
signature ``[None, in]`` (a dynamic batch: the runtime resizes it to one clip's vectors),
then converted to float and to full int8: int8 weights (per channel), int8 activations,
calibrated on a representative dataset of training vectors. The bundle's int8 model keeps
float input and output: its first op quantises and its last dequantises, inside the
interpreter, with the scale and zero point the converter chose. That is the same arithmetic
as int8 I/O with the quantisation done in numpy, but without numpy's temporaries per call:
measured on a 2-core AMD EPYC (AVX-512 VNNI) one clip took 387 us against 668 us with int8
I/O, and one vector 4.5 us against 17 us.
TensorFlow is imported here only, inside the functions: it is the ``tensorflow`` extra,
needed on the export machine and nowhere else.
"""
from __future__ import annotations

import logging
import os

import numpy as np

from edge.errors import EdgeAdError
from edge.native_output import native_stderr_to_log

log = logging.getLogger(__name__)

from .fold import Dense


def _tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")   # no banner per import on stderr
    try:
        with native_stderr_to_log(log):     # absl and oneDNN banners on import
            import tensorflow as tf
    except ImportError as e:
        raise EdgeAdError(f"TFLite export needs TensorFlow ({e}); install the extra: "
                          "pip install 'edge-ad[tensorflow]', or export with --formats onnx") from None
    return tf


def _module(tf, layers: list[Dense], batch: int | None):
    """A tf.Module computing the folded MLP; weights as constants (they fold into the flatbuffer)."""
    n_in = int(layers[0].weight.shape[1])

    class FoldedMLP(tf.Module):
        def __init__(self):
            super().__init__(name="edge_ad_autoencoder")
            self.weights_t = [tf.constant(np.ascontiguousarray(d.weight.T)) for d in layers]
            self.biases = [tf.constant(d.bias) for d in layers]
            self.relus = [d.relu for d in layers]

        @tf.function(input_signature=[tf.TensorSpec([batch, n_in], tf.float32, name="x")])
        def __call__(self, x):
            for w, b, relu in zip(self.weights_t, self.biases, self.relus):
                x = tf.matmul(x, w) + b
                if relu:
                    x = tf.nn.relu(x)
            return x

    return FoldedMLP()


def _converter(tf, layers: list[Dense], batch: int | None):
    module = _module(tf, layers, batch)
    return tf.lite.TFLiteConverter.from_concrete_functions(
        [module.__call__.get_concrete_function()], module)


def convert_float(layers: list[Dense], *, batch: int | None = None) -> bytes:
    """Float32 TFLite flatbuffer: ``x: (batch, in) float32 -> (batch, out) float32``.

    ``batch=None`` (the default) leaves the batch dynamic; an int fixes it.
    """
    tf = _tf()
    with native_stderr_to_log(log):
        return bytes(_converter(tf, layers, batch).convert())


def convert_int8(layers: list[Dense], calibration: np.ndarray, *, batch: int | None = None,
                 float_io: bool = True) -> bytes:
    """Full-integer TFLite flatbuffer: ``(batch, in) float32 -> (batch, out) float32``
    (quantised inside), or ``int8 -> int8`` with ``float_io=False``.

    Args:
        layers: the folded MLP.
        calibration: ``(n, in) float32`` training vectors, fed one at a time as the
            representative dataset (the converter records min/max per tensor).
        batch: None for a dynamic batch, or a fixed batch size.
        float_io: keep float input and output (the model's QUANTIZE and DEQUANTIZE ops
            run inside; what the bundle ships), or int8 input and output (the backend
            quantises in numpy; a peer in the tests, and for callers that hold int8 data).

    The input and output quantisation parameters live in the model; the edge backend
    reads them from there.
    """
    tf = _tf()
    vectors = np.ascontiguousarray(calibration, dtype=np.float32)

    step = 1 if batch is None else int(batch)

    def representative_dataset():
        for i in range(0, len(vectors) - step + 1, step):
            yield [vectors[i:i + step]]

    converter = _converter(tf, layers, None if batch is None else int(batch))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative_dataset
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if not float_io:
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    with native_stderr_to_log(log):         # "fully_quantize: 0, inference_type: 6, ..."
        return bytes(converter.convert())
