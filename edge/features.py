"""Public feature API: log-mel context vectors from the C front end (``csrc/``, via cffi).

The names are fixed (training, the edge runtime and outside checks use them):

- :func:`logmel_frames` ``(n,) -> (n_frames, n_mels)``, the seed's clip padding;
- :func:`context_vectors` ``(n_frames, n_mels) -> (n_vectors, n_mels * context_frames)``;
- :func:`clip_features`, both steps (309 x 640 for a 10 s clip);
- :class:`Frontend`, streaming: ``push`` any number of samples, get the vectors completed.

The kernel has the product sizes compiled in (``n_fft`` 1024, ``n_mels`` 128,
``context_frames`` 5); the other spec values (hop, floor, band edges, sample rate) reach it
as tables from :mod:`edge.tables`. A spec with other sizes raises
:class:`~edge.errors.SpecMismatchError`: there is deliberately no silent slow fallback, so
training can never use different code than the board. ``edge.reference`` computes any spec
in numpy for experiments.
"""
from __future__ import annotations

import threading
from typing import Any, Iterator

import numpy as np

from . import tables
from .errors import AudioError, FrontendError, SpecMismatchError
from .spec import DEFAULT_SPEC, FeatureSpec

__all__ = ["logmel_frames", "context_vectors", "clip_features", "Frontend", "kernel_sizes",
           "stream_vectors"]

_LIB: Any = None
_FFI: Any = None


def _kernel() -> tuple[Any, Any]:
    """The compiled module, imported on first use so a missing build gives one clear error."""
    global _LIB, _FFI
    if _LIB is None:
        try:
            from ._frontend import ffi, lib
        except ImportError as e:
            raise FrontendError(
                f"the C front end edge._frontend is not built ({e}); "
                "install the package with `pip install -e .` or run scripts/setup.sh") from None
        _FFI, _LIB = ffi, lib
    return _FFI, _LIB


def kernel_sizes() -> dict[str, int]:
    """The sizes compiled into the kernel: ``n_fft``, ``n_mels``, ``context_frames``."""
    _, lib = _kernel()
    return {"n_fft": lib.AD_N_FFT, "n_mels": lib.AD_N_MELS, "context_frames": lib.AD_CONTEXT}


def _check_error(lib: Any, ffi: Any, status: int, what: str) -> None:
    if status != lib.AD_OK:
        message = ffi.string(lib.ad_status_message(status)).decode()
        raise FrontendError(f"C front end: {what}: {message} (status {status})")


def _new_state(spec: FeatureSpec) -> Any:
    """An initialised ``ad_frontend`` for ``spec`` (the tables are copied into it)."""
    ffi, lib = _kernel()
    cfg, _tables = new_config(spec)
    state = ffi.new("ad_frontend *")
    # init copies the tables, so the numpy arrays need to live only until it returns
    _check_error(lib, ffi, lib.ad_frontend_init(state, cfg), f"init for spec {spec.digest[:12]}")
    return state


def new_config(spec: FeatureSpec) -> tuple[Any, list[np.ndarray]]:
    """The ``ad_config`` of ``spec`` and the arrays it points into (keep them alive until
    the init that copies them returns). SpecMismatchError for sizes the kernel lacks."""
    ffi, lib = _kernel()
    sizes = kernel_sizes()
    wanted = {"n_fft": spec.n_fft, "n_mels": spec.n_mels, "context_frames": spec.context_frames}
    if wanted != sizes:
        diff = ", ".join(f"{k}={wanted[k]} (kernel: {sizes[k]})" for k in sizes if wanted[k] != sizes[k])
        raise SpecMismatchError(
            f"the C front end is compiled for n_fft={sizes['n_fft']}, n_mels={sizes['n_mels']}, "
            f"context_frames={sizes['context_frames']}; this spec asks for {diff}. "
            "Use edge.reference for other sizes, or rebuild csrc/ with other AD_* constants")
    window = np.ascontiguousarray(tables.window(spec), dtype=np.float32)
    mel = tables.mel_sparse(spec)
    if len(mel.weights) > lib.AD_MEL_WEIGHTS_MAX:
        raise SpecMismatchError(
            f"the spec's mel filterbank has {len(mel.weights)} weights; the C front end holds "
            f"at most {lib.AD_MEL_WEIGHTS_MAX}")
    cfg = ffi.new("ad_config *")
    cfg.hop_samples = spec.hop_length
    cfg.log_floor = spec.log_floor
    cfg.window = ffi.from_buffer("float[]", window)
    cfg.mel_starts = ffi.from_buffer("int32_t[]", mel.starts)
    cfg.mel_lengths = ffi.from_buffer("int32_t[]", mel.lengths)
    cfg.mel_offsets = ffi.from_buffer("int32_t[]", mel.offsets)
    cfg.mel_weights = ffi.from_buffer("float[]", mel.weights)
    cfg.n_mel_weights = len(mel.weights)
    return cfg, [window, mel.starts, mel.lengths, mel.offsets, mel.weights]


# The clip functions reuse one state per (thread, spec): init costs about as much as
# 10 frames, and a state's scratch buffers must not be shared between threads.
_local = threading.local()


def _clip_state(spec: FeatureSpec) -> Any:
    states = getattr(_local, "states", None)
    if states is None:
        states = _local.states = {}
    state = states.get(spec)
    if state is None:
        state = states[spec] = _new_state(spec)
    return state


def _as_waveform(x: np.ndarray, what: str = "waveform", *, check_finite: bool = True) -> np.ndarray:
    """``(n,) float32`` C-contiguous (and finite with ``check_finite``); a clear error
    otherwise."""
    a = np.asarray(x)
    if a.ndim != 1:
        raise AudioError(f"{what}: expected a 1-D waveform, got shape {a.shape}")
    if a.dtype.kind == "i" and a.dtype.itemsize == 2:  # int16 of either byte order
        return (a * np.float32(1.0 / 32768.0)).astype(np.float32)  # SPEC 1: PCM scaling
    if not np.issubdtype(a.dtype, np.floating):
        raise AudioError(f"{what}: expected float or int16 samples, got dtype {a.dtype}")
    a = np.ascontiguousarray(a, dtype=np.float32)
    if not check_finite:
        return a
    # One sum is ~10x cheaper than isfinite over the clip and is non-finite whenever a
    # sample is (it may also overflow on huge finite values: then look properly).
    if a.size and not np.isfinite(a.sum()) and not np.isfinite(a).all():
        bad = int(np.count_nonzero(~np.isfinite(a)))
        raise AudioError(f"{what}: {bad} non-finite samples (NaN or inf); expected finite audio")
    return a


def logmel_frames(x: np.ndarray, *, spec: FeatureSpec = DEFAULT_SPEC) -> np.ndarray:
    """Log-mel frames of a whole clip with the seed's padding (SPEC section 2).

    Args:
        x: ``(n,)`` waveform at ``spec.sample_rate``: float as is, int16 scaled by 1/32768.
        spec: the feature spec; its sizes must match the compiled kernel.

    Returns:
        ``(spec.n_frames(n), spec.n_mels) float32``: ``log10(max(mel, log_floor))``;
        ``(313, 128)`` for 160000 samples.

    Raises:
        AudioError: ``x`` is not 1-D, or has non-finite samples (in any frame), or samples
            so large (~1e17) that the power spectrum overflows.
        SpecMismatchError: the spec's sizes are not the kernel's.
    """
    ffi, lib = _kernel()
    # The kernel counts frames with non-finite energies as it goes, for free; numpy looks
    # closer only then (a pass of its own over the clip costs ~8% of the whole call).
    a = _as_waveform(x, check_finite=False)
    state = _clip_state(spec)
    n_frames = lib.ad_clip_n_frames(state, a.size)
    out = np.empty((n_frames, spec.n_mels), dtype=np.float32)
    written, bad_frames = ffi.new("size_t *"), ffi.new("size_t *")
    _check_error(lib, ffi, lib.ad_frontend_clip_frames_f32(
        state, ffi.from_buffer("float[]", a), a.size,
        ffi.from_buffer("float[]", out), n_frames, written, bad_frames), "clip frames")
    if written[0] != n_frames:
        raise FrontendError(f"C front end wrote {written[0]} frames, expected {n_frames}")
    if bad_frames[0]:
        _as_waveform(a)  # raises for NaN/inf samples
        raise AudioError(
            f"waveform: samples up to {float(np.abs(a).max()):.3g} overflow the power spectrum "
            f"in {bad_frames[0]} frames; expected audio scaled to about [-1, 1]")
    return out


def context_vectors(frames: np.ndarray, *, spec: FeatureSpec = DEFAULT_SPEC) -> np.ndarray:
    """Concatenate ``spec.context_frames`` consecutive frames, oldest first, frame-major.

    Args:
        frames: ``(n_frames, spec.n_mels)`` log-mel frames.

    Returns:
        ``(max(0, n_frames - context_frames + 1), n_mels * context_frames) float32``
        (309 x 640 from 313 frames).

    Raises:
        SpecMismatchError: ``frames`` is not ``(n, spec.n_mels)`` or the spec's sizes are
            not the kernel's.
    """
    ffi, lib = _kernel()
    f = np.asarray(frames)
    if f.ndim != 2 or f.shape[1] != spec.n_mels:
        raise SpecMismatchError(f"frames: expected shape (n, {spec.n_mels}), got {f.shape}")
    _clip_state(spec)  # checks the spec's sizes against the kernel's
    f = np.ascontiguousarray(f, dtype=np.float32)
    n = max(0, f.shape[0] - spec.context_frames + 1)
    out = np.empty((n, spec.vector_size), dtype=np.float32)
    if n:
        lib.ad_context_vectors(ffi.from_buffer("float[]", f), f.shape[0],
                               ffi.from_buffer("float[]", out), n)
    return out


def clip_features(x: np.ndarray, *, spec: FeatureSpec = DEFAULT_SPEC) -> np.ndarray:
    """Context vectors of a whole clip: :func:`logmel_frames` then :func:`context_vectors`.

    Args:
        x: ``(n,)`` waveform at ``spec.sample_rate``.

    Returns:
        ``(spec.n_vectors(n), spec.vector_size) float32``; ``(309, 640)`` for 10 s.
        A clip shorter than one context window gives 0 rows (``edge.audio.load``
        refuses such files with an AudioError).
    """
    return context_vectors(logmel_frames(x, spec=spec), spec=spec)


class Frontend:
    """Streaming front end: push samples in any chunk size, get the vectors they complete.

    No padding: a frame every ``hop_length`` samples once ``n_fft`` samples have arrived,
    and a vector per frame once ``context_frames`` frames exist, so pushing a whole clip
    at once equals ``context_vectors(reference.logmel_frames_unpadded(x))``.

    Example:
        >>> fe = Frontend()
        >>> fe.push(np.zeros(3000, np.int16)).shape
        (0, 640)
        >>> fe.push(np.zeros(512, np.int16)).shape
        (1, 640)
    """

    def __init__(self, spec: FeatureSpec = DEFAULT_SPEC) -> None:
        self.spec = spec
        self._ffi, self._lib = _kernel()
        self._state = _new_state(spec)
        self._consumed = self._ffi.new("size_t *")
        self._written = self._ffi.new("size_t *")

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Feed samples; return the context vectors completed by them.

        Args:
            samples: ``(n,)`` int16 PCM (scaled by 1/32768) or float samples, any ``n``.

        Returns:
            ``(k, spec.vector_size) float32``, ``k >= 0`` (oldest vector first).

        Raises:
            AudioError: not 1-D, another dtype, or non-finite samples (the stream is left
                as it was).
        """
        ffi, lib = self._ffi, self._lib
        a = np.asarray(samples)
        if a.ndim != 1:
            raise AudioError(f"Frontend.push: expected 1-D samples, got shape {a.shape}")
        if a.dtype.kind == "i" and a.dtype.itemsize == 2:  # int16 of either byte order
            a = np.ascontiguousarray(a, dtype=np.int16)
            push, ctype = lib.ad_frontend_push_i16, "int16_t[]"
        elif np.issubdtype(a.dtype, np.floating):
            a = _as_waveform(a, "Frontend.push")
            push, ctype = lib.ad_frontend_push_f32, "float[]"
        else:
            raise AudioError(f"Frontend.push: expected int16 or float samples, got dtype {a.dtype}")
        k = lib.ad_frontend_vectors_for(self._state, a.size)
        out = np.empty((k, self.spec.vector_size), dtype=np.float32)
        status = push(self._state, ffi.from_buffer(ctype, a), a.size,
                      ffi.from_buffer("float[]", out), k, self._consumed, self._written)
        _check_error(lib, ffi, status, "push")
        if self._consumed[0] != a.size or self._written[0] != k:
            raise FrontendError(
                f"C front end consumed {self._consumed[0]} of {a.size} samples and wrote "
                f"{self._written[0]} of {k} vectors")
        return out

    def reset(self) -> None:
        """Forget buffered samples and frames (a new stream starts)."""
        self._lib.ad_frontend_reset(self._state)


def stream_vectors(stream: Any, *, spec: FeatureSpec = DEFAULT_SPEC,
                   batch: int = 1024) -> Iterator[np.ndarray]:
    """The context vectors of a whole clip, as :func:`clip_features` gives them, in
    batches of ``batch`` rows (the last one shorter): the seed-padded clip pushed through
    the streaming :class:`Frontend` (the same kernel stages), so memory does not grow with
    the clip. Equal batches matter to the caller's model runtime: TFLite re-plans its
    tensors at every change of batch size.

    Args:
        stream: an :class:`edge.audio.AudioStream` (``n_samples``, ``padded_blocks()``).

    Yields:
        ``(k, spec.vector_size) float32``, ``spec.n_vectors(stream.n_samples)`` rows in all.
    """
    fe = Frontend(spec)
    held: list[np.ndarray] = []
    n_held = 0
    for block in stream.padded_blocks():
        v = fe.push(block)
        if not len(v):
            continue
        if not np.isfinite(v.sum()):
            # Finite samples so large (~1e17) that the power spectrum overflows.
            raise AudioError(
                f"{stream.path}: samples up to {float(np.abs(block).max()):.3g} overflow the "
                "power spectrum; expected audio scaled to about [-1, 1]")
        held.append(v)
        n_held += len(v)
        if n_held >= batch:
            rows = np.concatenate(held)
            cut = len(rows) - len(rows) % batch
            for i in range(0, cut, batch):
                yield rows[i:i + batch]
            held, n_held = ([rows[cut:]], len(rows) - cut) if cut < len(rows) else ([], 0)
    if n_held:
        yield np.concatenate(held)
