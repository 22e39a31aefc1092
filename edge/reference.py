"""A slow, clear numpy reference of the feature computation (SPEC section 2).

It is written for reading, not speed: one frame at a time, the dense mel matrix, float64.
Tests hold the C kernel to it; nothing in production calls it.
"""
from __future__ import annotations

import numpy as np

from . import tables
from .spec import DEFAULT_SPEC, FeatureSpec


def pad_clip(x: np.ndarray, spec: FeatureSpec = DEFAULT_SPEC) -> np.ndarray:
    """The seed's padding: ``pad = n_fft - N mod n_fft`` zeros, ``floor(pad/2)`` in front."""
    x = np.asarray(x, dtype=np.float64)
    pad = spec.n_fft - len(x) % spec.n_fft
    return np.concatenate([np.zeros(pad // 2), x, np.zeros(pad - pad // 2)])


def logmel_frames_unpadded(x: np.ndarray, spec: FeatureSpec = DEFAULT_SPEC) -> np.ndarray:
    """Log-mel frames of ``x`` as given (no padding), ``(n_frames, n_mels) float64``:
    a frame every ``hop_length`` samples once ``n_fft`` samples are there (streaming)."""
    x = np.asarray(x, dtype=np.float64)
    win = tables.window(spec).astype(np.float64)
    mel = tables.mel_dense(spec).astype(np.float64)
    n_frames = 0 if len(x) < spec.n_fft else 1 + (len(x) - spec.n_fft) // spec.hop_length
    out = np.empty((n_frames, spec.n_mels))
    for t in range(n_frames):
        frame = x[t * spec.hop_length: t * spec.hop_length + spec.n_fft]
        power = np.abs(np.fft.rfft(win * frame)) ** 2
        out[t] = np.log10(np.maximum(mel @ power, spec.log_floor))
    return out


def logmel_frames(x: np.ndarray, spec: FeatureSpec = DEFAULT_SPEC) -> np.ndarray:
    """Log-mel frames of a whole clip with the seed's padding, ``(n_frames, n_mels)``."""
    return logmel_frames_unpadded(pad_clip(x, spec), spec)


def context_vectors(frames: np.ndarray, spec: FeatureSpec = DEFAULT_SPEC) -> np.ndarray:
    """Concatenate ``context_frames`` consecutive frames, oldest first, frame-major:
    ``(n_frames - context_frames + 1, n_mels * context_frames)``."""
    c = spec.context_frames
    n = max(0, len(frames) - c + 1)
    return np.stack([frames[i:i + c].reshape(-1) for i in range(n)]) if n else \
        np.empty((0, spec.vector_size))


def clip_features(x: np.ndarray, spec: FeatureSpec = DEFAULT_SPEC) -> np.ndarray:
    """Both steps on a whole clip: ``(n_vectors, vector_size)`` (309 x 640 for 10 s)."""
    return context_vectors(logmel_frames(x, spec), spec)
