"""The C kernel's int8 network (:mod:`edge.dense`) read out of an int8 TFLite model.

Everything comes from the model's own tensors, so the C kernel and TFLite compute the same
integers: int8 weights and their per-channel (or per-tensor) scales, int32 biases, the
activations' scales and zero points, each FULLY_CONNECTED's fused activation. The
requantisation multipliers are derived from the scales with TFLite's own formula
(``PopulateConvolutionQuantizationParams`` / ``QuantizeMultiplier``):
``QuantizeMultiplier(double(input_scale) * double(weight_scale) / double(output_scale))``.

Two graph shapes are read: int8 input and output (``FULLY_CONNECTED`` x N), and float
input and output with the quantisation inside (``QUANTIZE``, ``FULLY_CONNECTED`` x N,
``DEQUANTIZE``). The flatbuffer is parsed with the schema module LiteRT ships (TensorFlow's
as a fallback) and the ``flatbuffers`` package, both there wherever export runs.
"""
from __future__ import annotations

import math

import numpy as np

from edge.dense import DenseLayer, DenseNet
from edge.errors import EdgeAdError

_INT8, _INT32, _FLOAT32 = 9, 2, 0        # TensorType
_NONE, _RELU = 0, 1                      # ActivationFunctionType


def _schema():
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:
        try:
            from tensorflow.lite.python import schema_py_generated as schema
        except ImportError:
            raise EdgeAdError("reading a TFLite model needs ai-edge-litert or TensorFlow "
                              "(pip install 'edge-ad[tflite]')") from None
    return schema


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite's ``QuantizeMultiplier``: ``real ~= multiplier * 2^(shift - 31)`` with
    ``multiplier`` in ``[2^30, 2^31)`` (0 for 0), ``shift`` clamped as TFLite does."""
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    fixed = int(math.floor(abs(q) * (1 << 31) + 0.5)) * (1 if q >= 0 else -1)  # std::round
    if fixed == 1 << 31:
        fixed //= 2
        shift += 1
    if shift < -31:
        shift, fixed = 0, 0
    if shift > 30:
        shift, fixed = 30, (1 << 31) - 1
    return fixed, shift


def from_tflite(model: bytes, *, single_rounding: bool = True,
                source: str = "model_int8.tflite") -> DenseNet:
    """The :class:`~edge.dense.DenseNet` an int8 TFLite model computes.

    ``single_rounding``: the requantisation form of the runtime to agree with: True for
    the ai-edge-litert wheels (built with TFLITE_SINGLE_ROUNDING; export scores and gates
    the model with it), False for gemmlowp's double rounding (tflite-runtime 2.14, TFLM).
    The two differ in the last bit of about one output in 200.

    Raises:
        EdgeAdError: the graph is not [QUANTIZE] FULLY_CONNECTED x N [DEQUANTIZE] on int8
            tensors with symmetric weights and NONE/RELU activations (names ``source``).
    """
    schema = _schema()
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    try:
        m = schema.ModelT.InitFromPackedBuf(bytearray(model), 0)
    except Exception as e:   # flatbuffers raises whatever a bad offset leads to
        raise EdgeAdError(f"{source}: not a TFLite flatbuffer ({type(e).__name__}: {e})") from None

    def fail(what: str) -> EdgeAdError:
        return EdgeAdError(f"{source}: {what}; the C int8 kernel takes [QUANTIZE] "
                           "FULLY_CONNECTED x N [DEQUANTIZE] on int8 tensors")

    if len(m.subgraphs) != 1:
        raise fail(f"{len(m.subgraphs)} subgraphs")
    g = m.subgraphs[0]
    tensors = g.tensors

    def op_name(op) -> str:
        code = m.operatorCodes[op.opcodeIndex]
        return names.get(max(code.builtinCode, code.deprecatedBuiltinCode), "?")

    def quant(i: int, role: str) -> tuple[np.ndarray, np.ndarray]:
        q = tensors[i].quantization
        if q is None or q.scale is None or q.zeroPoint is None or len(q.scale) == 0:
            raise fail(f"{role} tensor {tensors[i].name!r} has no quantisation")
        return np.asarray(q.scale, np.float32), np.asarray(q.zeroPoint, np.int64)

    def const(i: int, dtype: str, role: str) -> np.ndarray:
        t = tensors[i]
        b = m.buffers[t.buffer]
        if b.data is not None and len(b.data):
            raw = np.asarray(b.data, np.uint8).tobytes()
        elif getattr(b, "offset", 0) > 1:   # stored after the flatbuffer (big models)
            raw = bytes(model[b.offset:b.offset + b.size])
        else:
            raise fail(f"{role} tensor {t.name!r} is not a constant")
        return np.frombuffer(raw, dtype).reshape(tuple(t.shape))

    ops = list(g.operators)
    kinds = [op_name(op) for op in ops]
    float_in = kinds[:1] == ["QUANTIZE"]
    float_out = kinds[-1:] == ["DEQUANTIZE"]
    fcs = ops[int(float_in):len(ops) - int(float_out)]
    if not fcs or any(op_name(op) != "FULLY_CONNECTED" for op in fcs):
        raise fail(f"operators {kinds}")
    current = ops[0].outputs[0] if float_in else g.inputs[0]
    if float_in and (ops[0].inputs[0] != g.inputs[0] or tensors[g.inputs[0]].type != _FLOAT32):
        raise fail("QUANTIZE does not read the float model input")
    in_scales, in_zps = quant(current, "input")
    layers = []
    for n, op in enumerate(fcs):
        x_i, w_i = int(op.inputs[0]), int(op.inputs[1])
        b_i = int(op.inputs[2]) if len(op.inputs) > 2 else -1
        y_i = int(op.outputs[0])
        if x_i != current:
            raise fail(f"FULLY_CONNECTED {n} does not read the previous layer's output")
        if any(tensors[i].type != _INT8 for i in (x_i, w_i, y_i)):
            raise fail(f"FULLY_CONNECTED {n} is not int8 (types "
                       f"{[tensors[i].type for i in (x_i, w_i, y_i)]})")
        opt = op.builtinOptions
        act = getattr(opt, "fusedActivationFunction", _NONE)
        if act not in (_NONE, _RELU) or getattr(opt, "weightsFormat", 0) != 0:
            raise fail(f"FULLY_CONNECTED {n} has activation {act} / weights format "
                       f"{getattr(opt, 'weightsFormat', 0)}; expected NONE or RELU, DEFAULT")
        w = const(w_i, "<i1", "weights")
        if w.ndim != 2:
            raise fail(f"FULLY_CONNECTED {n} weights of shape {w.shape}")
        n_out = w.shape[0]
        w_scales, w_zps = quant(w_i, "weights")
        if np.any(w_zps != 0) or len(w_scales) not in (1, n_out):
            raise fail(f"FULLY_CONNECTED {n} weights are not symmetric per-tensor or "
                       "per-channel int8")
        w_scales = np.broadcast_to(w_scales, (n_out,)).astype(np.float32)
        bias = (np.zeros(n_out, np.int32) if b_i < 0 else
                const(b_i, "<i4", "bias").astype(np.int32).reshape(n_out))
        if b_i >= 0 and tensors[b_i].type != _INT32:
            raise fail(f"FULLY_CONNECTED {n} bias is not int32")
        x_scale, x_zp = quant(x_i, "input")
        y_scale, y_zp = quant(y_i, "output")
        if len(x_scale) != 1 or len(y_scale) != 1:
            raise fail(f"FULLY_CONNECTED {n} activations are not per-tensor")
        mults, shifts = zip(*(quantize_multiplier(float(x_scale[0]) * float(s) / float(y_scale[0]))
                              for s in w_scales))
        layers.append(DenseLayer(weights=np.ascontiguousarray(w, np.int8),
                                 bias=bias, multiplier=np.array(mults, np.int32),
                                 shift=np.array(shifts, np.int32), weight_scale=w_scales,
                                 input_zero_point=int(x_zp[0]), output_zero_point=int(y_zp[0]),
                                 relu=act == _RELU))
        current = y_i
    if float_out:
        if ops[-1].inputs[0] != current or ops[-1].outputs[0] != g.outputs[0]:
            raise fail("DEQUANTIZE does not read the last layer and write the model output")
    elif current != g.outputs[0]:
        raise fail("the last FULLY_CONNECTED is not the model output")
    out_scale, out_zp = quant(current, "output")
    return DenseNet(layers=tuple(layers), single_rounding=single_rounding,
                    input_scale=float(in_scales[0]),
                    input_zero_point=int(in_zps[0]), output_scale=float(out_scale[0]),
                    output_zero_point=int(out_zp[0]))


def bundle_files(models: dict[str, bytes]) -> dict[str, bytes]:
    """The bundle's C network, ``{"model_int8.adq8": bytes}``, derived from the int8 TFLite
    model among ``models`` (``{file name: bytes}`` of the shipped models); ``{}`` without
    one. Single rounding: export scores and gates the model with ai-edge-litert."""
    from edge.bundle import C_INT8_FILE, C_SOURCE_FILE

    if C_SOURCE_FILE not in models:
        return {}
    net = from_tflite(models[C_SOURCE_FILE], single_rounding=True, source=C_SOURCE_FILE)
    return {C_INT8_FILE: net.to_bytes()}
