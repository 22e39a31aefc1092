"""C backend: the bundle's int8 network (``model_int8.adq8``) on edge-ad's own C kernel.

Needs numpy and the cffi-built ``edge._frontend`` only: no LiteRT, tflite-runtime,
onnxruntime, torch or scipy. It computes the int8 TFLite model's integers exactly
(TFLite's reference FULLY_CONNECTED arithmetic; tests compare with LiteRT's reference
kernels), quantises and dequantises as TFLite's QUANTIZE and DEQUANTIZE do, and gives the
squared error of each vector against its float input (SPEC 4) without a Python pass.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .. import dense
from ..errors import BackendError, EdgeAdError
from . import check_input

KERNELS = ("auto", "scalar", "avx2", "avx512-vnni", "neon", "amx", "avx-vnni")
#: vectors a push completes that go through CStream's preallocated buffer
SMALL_PUSH = 8
_INT16 = np.dtype(np.int16)
_FLOAT32 = np.dtype(np.float32)


def _lib() -> tuple[Any, Any]:
    from ..features import _kernel   # the one compiled module: front end and network

    return _kernel()


def kernel_built() -> bool:
    """Whether the compiled module has the int8 network (a build older than it has not)."""
    try:
        return hasattr(_lib()[1], "ad_dense_init")
    except EdgeAdError:
        return False


def available_kernels() -> list[str]:
    """Kernel names this build has and this CPU runs, e.g. ``["scalar", "avx2"]``."""
    ffi, lib = _lib()
    mask = lib.ad_dense_kernels()
    return [ffi.string(lib.ad_dense_kernel_name(k)).decode()
            for k in range(1, lib.AD_DENSE_N_KERNELS) if mask & (1 << k)]


def new_network(net: dense.DenseNet, *, kernel: str = "auto", source: str = "network") -> tuple[Any, Any]:
    """An initialised ``ad_dense`` and the memory it lives in: ``(state, memory)``; keep
    both alive together. BackendError naming ``source`` when the C init refuses."""
    ffi, lib = _lib()
    if kernel not in KERNELS:
        raise BackendError(f"kernel {kernel!r}: expected one of {', '.join(KERNELS)}")
    keep = []   # the arrays must outlive init (it copies them)
    layers = ffi.new("ad_dense_layer_config[]", len(net.layers))
    for c, l in zip(layers, net.layers):
        arrays = {"weights": ("int8_t[]", np.ascontiguousarray(l.weights, np.int8)),
                  "bias": ("int32_t[]", np.ascontiguousarray(l.bias, np.int32)),
                  "multiplier": ("int32_t[]", np.ascontiguousarray(l.multiplier, np.int32)),
                  "shift": ("int32_t[]", np.ascontiguousarray(l.shift, np.int32))}
        for field, (ctype, a) in arrays.items():
            keep.append(a)
            setattr(c, field, ffi.from_buffer(ctype, a))
        c.n_in, c.n_out = l.n_in, l.n_out
        c.input_zero_point, c.output_zero_point = l.input_zero_point, l.output_zero_point
        c.relu = int(l.relu)
    cfg = ffi.new("ad_dense_config *", {"n_layers": len(net.layers), "layers": layers,
                                        "single_rounding": int(net.single_rounding),
                                        "input_scale": net.input_scale,
                                        "output_scale": net.output_scale})
    size = lib.ad_dense_mem_bytes(cfg)
    state = ffi.new("ad_dense *")
    memory = ffi.new("char[]", max(size, 1))
    kernel_id = 0 if kernel == "auto" else KERNELS.index(kernel)
    status = lib.ad_dense_init(state, cfg, kernel_id, memory, size)
    if status != lib.AD_OK:
        message = ffi.string(lib.ad_status_message(status)).decode()
        if status == lib.AD_ERR_KERNEL:
            message += f" ({kernel!r}; this machine has {', '.join(available_kernels())})"
        raise BackendError(f"{source}: the C int8 kernel refuses it: {message}")
    return state, memory


class CBackend:
    """An ``.adq8`` int8 network; ``run(x: (n, d) float32) -> (n, d) float32`` (dequantised),
    ``errors(x) -> (n,) float64`` squared errors, ``run_int8(q) -> q``."""

    name = "edge-ad C int8"
    precision = "int8"

    def __init__(self, path: str | Path, *, kernel: str = "auto", num_threads: int = 1,
                 net: dense.DenseNet | None = None):
        """``net``: run this network instead of reading ``path`` (which then only names it
        in errors), e.g. one layer of a bundle's network."""
        self.path = Path(path)
        self.net = dense.read(self.path) if net is None else net
        self._ffi, self._lib = _lib()
        self._state, self._memory = new_network(self.net, kernel=kernel, source=str(self.path))
        self.kernel = self._ffi.string(self._lib.ad_dense_kernel_name(self._state.kernel)).decode()
        self.width = self.net.n_in
        self.n_out = self.net.n_out

    def _call(self, x: np.ndarray, *, recon: bool, errors: bool, q: bool) -> tuple:
        ffi, lib = self._ffi, self._lib
        x = check_input(x, self.width, self.path)
        n = len(x)
        out = {"q": np.empty((n, self.n_out), np.int8) if q else None,
               "recon": np.empty((n, self.n_out), np.float32) if recon else None,
               "errors": np.empty(n, np.float64) if errors else None}
        ptr = {"q": "int8_t[]", "recon": "float[]", "errors": "double[]"}
        args = [ffi.NULL if a is None or n == 0 else ffi.from_buffer(ptr[k], a)
                for k, a in out.items()]
        status = lib.ad_dense_run_f32(self._state, ffi.from_buffer("float[]", x), n, *args)
        self._check(status)
        return out["q"], out["recon"], out["errors"]

    def run(self, x: np.ndarray) -> np.ndarray:
        """Reconstruct vectors: ``(n, d) float32 -> (n, d) float32`` (dequantised)."""
        # The per-decision call: written out rather than through _call, whose generality
        # costs several microseconds against a 31-vector network of about 40.
        if not (type(x) is np.ndarray and x.dtype is _FLOAT32 and x.ndim == 2
                and x.shape[1] == self.width and x.flags.c_contiguous):
            x = check_input(x, self.width, self.path)
        n = len(x)
        out = np.empty((n, self.n_out), np.float32)
        if n:
            ffi = self._ffi
            self._check(self._lib.ad_dense_run_f32(self._state, ffi.from_buffer("float[]", x), n,
                                                   ffi.NULL, ffi.from_buffer("float[]", out), ffi.NULL))
        return out

    def _check(self, status: int) -> None:
        """A BackendError naming the model file for a kernel status other than AD_OK."""
        if status != self._lib.AD_OK:
            raise BackendError(f"{self.path.name}: C int8 kernel: "
                               f"{self._ffi.string(self._lib.ad_status_message(status)).decode()}")

    def errors(self, x: np.ndarray) -> np.ndarray:
        """``||recon_i - x_i||^2`` of each vector, ``(n, d) float32 -> (n,) float64``."""
        return self._call(x, recon=False, errors=True, q=False)[2]

    def run_quantized(self, x: np.ndarray) -> np.ndarray:
        """The network's int8 outputs for float inputs: ``(n, d) float32 -> (n, d) int8``."""
        return self._call(x, recon=False, errors=False, q=True)[0]

    @property
    def streams_rows(self) -> bool:
        """Whether the compiled module's C stream gives the heads' feature rows (a build
        older than them gives errors only, and the ensemble heads then stream in numpy)."""
        return hasattr(self._lib, "ad_stream_push_rows_i16")

    def stream(self, spec, *, rows: bool = False) -> "CStream":
        """The whole streaming path in C for ``spec``'s front end: see :class:`CStream`."""
        return CStream(self, spec, rows=rows)

    def run_int8(self, q: np.ndarray) -> np.ndarray:
        """int8 in, int8 out: ``(n, n_in) int8 -> (n, n_out) int8``."""
        ffi, lib = self._ffi, self._lib
        q = np.asarray(q)
        if q.ndim != 2 or q.shape[1] != self.width or q.dtype != np.int8:
            raise BackendError(f"{self.path.name}: int8 input of shape {q.shape} and dtype "
                               f"{q.dtype}; expected (n, {self.width}) int8")
        q = np.ascontiguousarray(q)
        out = np.empty((len(q), self.n_out), np.int8)
        if len(q):
            self._check(lib.ad_dense_run_i8(self._state, ffi.from_buffer("int8_t[]", q), len(q),
                                            ffi.from_buffer("int8_t[]", out)))
        return out


class CStream:
    """Samples in, the squared error of each completed context vector out, one C call per
    block (``ad_stream``: front end, context ring, int8 network, SPEC 4's error). The
    errors are bit for bit ``backend.errors(Frontend(spec).push(samples))``.

    With ``rows=True`` each vector gives the detector heads' feature row instead
    (``AD_STREAM_ROW`` float64 values, 1 + 3 n_mels: the error,
    the per-band errors, the first frame, its square), so a head such as the default
    ensemble streams without Python per vector too (:meth:`edge.heads.Head.stream_columns`
    picks its columns)."""

    def __init__(self, backend: CBackend, spec, *, rows: bool = False) -> None:
        from ..features import new_config

        self._ffi, self._lib = _lib()
        ffi, lib = self._ffi, self._lib
        self._backend = backend          # its ad_dense must outlive this stream
        cfg, _tables = new_config(spec)
        self._state = ffi.new("ad_stream *")
        status = lib.ad_stream_init(self._state, cfg, backend._state)
        if status != lib.AD_OK:
            raise BackendError(f"{backend.path.name}: the C stream refuses spec "
                               f"{spec.digest[:12]}: "
                               f"{ffi.string(lib.ad_status_message(status)).decode()}")
        self._width = int(lib.AD_STREAM_ROW) if rows else 0
        self._push_i16 = lib.ad_stream_push_rows_i16 if rows else lib.ad_stream_push_i16
        self._push_f32 = lib.ad_stream_push_rows_f32 if rows else lib.ad_stream_push_f32
        self._consumed = ffi.new("size_t *")
        self._written = ffi.new("size_t *")
        # A hop-sized push completes at most a few vectors: they go through a buffer made
        # once (and are copied out), which saves an allocation and a cffi call per push.
        self._small = np.empty((SMALL_PUSH, self._width) if rows else SMALL_PUSH, np.float64)
        self._small_ptr = ffi.from_buffer("double[]", self._small)

    def push(self, samples: np.ndarray) -> np.ndarray:
        """``(n,) int16`` (or float) samples -> ``(k,) float64`` errors (``(k, AD_STREAM_ROW)``
        rows), oldest first."""
        ffi, lib = self._ffi, self._lib
        a = samples
        if type(a) is np.ndarray and a.dtype is _INT16 and a.flags.c_contiguous:   # the hot case
            push, ptr = self._push_i16, ffi.from_buffer("int16_t[]", a)
        elif np.asarray(a).dtype == np.int16:
            a = np.ascontiguousarray(np.asarray(a).reshape(-1))
            push, ptr = self._push_i16, ffi.from_buffer("int16_t[]", a)
        else:
            from ..features import _as_waveform
            a = np.ascontiguousarray(_as_waveform(np.asarray(a), "CStream.push"))
            push, ptr = self._push_f32, ffi.from_buffer("float[]", a)
        n = a.size
        k = lib.ad_stream_vectors_for(self._state, n)
        if k <= SMALL_PUSH:
            out, out_ptr = self._small, self._small_ptr
        else:
            out = np.empty((k, self._width) if self._width else k, np.float64)
            out_ptr = ffi.from_buffer("double[]", out)
        status = push(self._state, ptr, n, out_ptr, k, self._consumed, self._written)
        if status != lib.AD_OK or self._consumed[0] != n or self._written[0] != k:
            raise BackendError(f"C stream: status {status}, consumed {self._consumed[0]} of "
                               f"{n} samples, wrote {self._written[0]} of {k} errors")
        return out[:k].copy() if out is self._small else out

    def reset(self) -> None:
        """Forget buffered samples and frames (a gap in the audio)."""
        self._lib.ad_stream_reset(self._state)
