"""The int8 dense network as data: what the C kernel runs (``csrc/ad_dense.c``) and the
bundle carries as ``model_int8.adq8``.

Export derives it from the int8 TFLite model's own tensors (``train/export/dense.py``), so
the C kernel and TFLite compute the same integers. The file is little-endian
(``docs/int8-c-kernel.md`` documents it byte by byte)::

    header, 36 bytes:  magic b"EDGEADQ8", uint32 version (1), uint32 n_layers,
                       uint32 flags (bit 0: single rounding, TFLITE_SINGLE_ROUNDING),
                       float32 input_scale, int32 input_zero_point,
                       float32 output_scale, int32 output_zero_point
    layer table:       n_layers entries of 32 bytes: int32 n_in, n_out, input_zero_point,
                       output_zero_point, relu (0/1), reserved (0),
                       uint32 data_offset, data_bytes
    layer data:        at data_offset (a multiple of 16): int8 weights[n_out][n_in]
                       (zero bytes up to a multiple of 4), int32 bias[n_out],
                       int32 multiplier[n_out], int32 shift[n_out],
                       float32 weight_scale[n_out]

numpy only: a board reads it without any model runtime.
"""
from __future__ import annotations

import dataclasses
import struct
from pathlib import Path

import numpy as np

from .errors import BundleError

MAGIC = b"EDGEADQ8"
VERSION = 1
_HEADER = struct.Struct("<8sIIIfifi")
_LAYER = struct.Struct("<iiiiiiII")


@dataclasses.dataclass(frozen=True)
class DenseLayer:
    """One int8 fully connected layer, TFLite's reference arithmetic (see ``edge_ad.h``).

    ``weights`` ``(n_out, n_in) int8``; ``bias``, ``multiplier``, ``shift``
    ``(n_out,) int32``; ``weight_scale`` ``(n_out,) float32`` (kept to document the
    multipliers: ``multiplier, shift = QuantizeMultiplier(in_scale * weight_scale / out_scale)``).
    """

    weights: np.ndarray
    bias: np.ndarray
    multiplier: np.ndarray
    shift: np.ndarray
    weight_scale: np.ndarray
    input_zero_point: int
    output_zero_point: int
    relu: bool

    @property
    def n_in(self) -> int:
        return int(self.weights.shape[1])

    @property
    def n_out(self) -> int:
        return int(self.weights.shape[0])


@dataclasses.dataclass(frozen=True)
class DenseNet:
    """A chain of :class:`DenseLayer` with the float input's and output's quantisation."""

    layers: tuple[DenseLayer, ...]
    single_rounding: bool     # TFLite's MultiplyByQuantizedMultiplier form (see edge_ad.h)
    input_scale: float
    input_zero_point: int
    output_scale: float
    output_zero_point: int

    @property
    def n_in(self) -> int:
        return self.layers[0].n_in

    @property
    def n_out(self) -> int:
        return self.layers[-1].n_out

    @property
    def macs(self) -> int:
        """Multiply-accumulates per vector."""
        return sum(l.n_in * l.n_out for l in self.layers)

    def to_bytes(self) -> bytes:
        """The file's bytes (layout in the module docstring)."""
        head = _HEADER.pack(MAGIC, VERSION, len(self.layers), int(self.single_rounding),
                            self.input_scale,
                            self.input_zero_point, self.output_scale, self.output_zero_point)
        offset = _align16(len(head) + _LAYER.size * len(self.layers))
        table, blobs = [], []
        for l in self.layers:
            w = np.ascontiguousarray(l.weights, dtype=np.int8).tobytes()
            w += b"\0" * (-len(w) % 4)
            data = (w + l.bias.astype("<i4").tobytes() + l.multiplier.astype("<i4").tobytes()
                    + l.shift.astype("<i4").tobytes() + l.weight_scale.astype("<f4").tobytes())
            table.append(_LAYER.pack(l.n_in, l.n_out, l.input_zero_point, l.output_zero_point,
                                     int(l.relu), 0, offset, len(data)))
            data += b"\0" * (-len(data) % 16)
            blobs.append(data)
            offset += len(data)
        out = head + b"".join(table)
        out += b"\0" * (_align16(len(out)) - len(out))
        return out + b"".join(blobs)


def _align16(n: int) -> int:
    return (n + 15) // 16 * 16


def from_bytes(data: bytes, *, source: str = "int8 network") -> DenseNet:
    """Parse the file's bytes; :class:`~edge.errors.BundleError` naming ``source`` and the
    first thing that is wrong. Value ranges (zero points, multipliers) are the C init's to
    check; this checks the structure."""
    def bad(what: str) -> BundleError:
        return BundleError(f"{source}: {what}; expected an edge-ad int8 network "
                           f"({MAGIC.decode()} version {VERSION}, written by edge-ad export)")

    if len(data) < _HEADER.size:
        raise bad(f"{len(data)} bytes, shorter than the {_HEADER.size}-byte header")
    magic, version, n_layers, flags, in_scale, in_zp, out_scale, out_zp = _HEADER.unpack_from(data, 0)
    if magic != MAGIC:
        raise bad(f"magic {magic!r}")
    if version != VERSION:
        raise bad(f"version {version}")
    if flags not in (0, 1):
        raise bad(f"flags {flags:#x}")
    max_layers, max_width = _kernel_limits()
    if not 1 <= n_layers <= max_layers or len(data) < _HEADER.size + _LAYER.size * n_layers:
        raise bad(f"{n_layers} layers in {len(data)} bytes (at most {max_layers} layers)")
    layers = []
    for i in range(n_layers):
        n_in, n_out, zp_in, zp_out, relu, _, offset, size = _LAYER.unpack_from(
            data, _HEADER.size + i * _LAYER.size)
        if not (0 < n_in <= max_width and 0 < n_out <= max_width and relu in (0, 1)):
            raise bad(f"layer {i}: n_in {n_in}, n_out {n_out}, relu {relu} (widths 1..{max_width})")
        w_bytes = n_in * n_out + (-(n_in * n_out) % 4)
        if size != w_bytes + 16 * n_out or offset + size > len(data):
            raise bad(f"layer {i}: {size} data bytes at {offset} in a file of {len(data)}")
        w = np.frombuffer(data, np.int8, n_in * n_out, offset).reshape(n_out, n_in)
        rest = offset + w_bytes
        bias, mult, shift = (np.frombuffer(data, "<i4", n_out, rest + j * 4 * n_out).astype(np.int32)
                             for j in range(3))
        scale = np.frombuffer(data, "<f4", n_out, rest + 12 * n_out).astype(np.float32)
        layers.append(DenseLayer(weights=w.copy(), bias=bias, multiplier=mult, shift=shift,
                                 weight_scale=scale, input_zero_point=zp_in,
                                 output_zero_point=zp_out, relu=bool(relu)))
    if (layers[0].input_zero_point, layers[-1].output_zero_point) != (in_zp, out_zp):
        raise bad(f"header zero points {in_zp}/{out_zp} differ from the first layer's input "
                  f"({layers[0].input_zero_point}) and the last layer's output "
                  f"({layers[-1].output_zero_point})")
    return DenseNet(layers=tuple(layers), single_rounding=bool(flags & 1),
                    input_scale=float(np.float32(in_scale)),
                    input_zero_point=in_zp, output_scale=float(np.float32(out_scale)),
                    output_zero_point=out_zp)


def _kernel_limits() -> tuple[int, int]:
    """``(layers, width)`` the C engine accepts, from the compiled header (``AD_DENSE_MAX_*``),
    so a file the parser passes is one ``ad_dense_init`` takes."""
    from .features import _kernel

    lib = _kernel()[1]
    return int(lib.AD_DENSE_MAX_LAYERS), int(lib.AD_DENSE_MAX_WIDTH)


def read(path: str | Path) -> DenseNet:
    """Read a ``.adq8`` file (BundleError naming it if it is not one)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise BundleError(f"{path}: cannot read ({e.strerror})") from None
    return from_bytes(data, source=str(path))


__all__ = ["DenseLayer", "DenseNet", "from_bytes", "read", "MAGIC", "VERSION"]
