"""Tables derived from a FeatureSpec, built in one place for the C kernel and the reference.

The mel filterbank is librosa's (``librosa.filters.mel`` with ``htk=False,
norm="slaney"``) recomputed in numpy so the board does not need librosa; a test checks it
against librosa itself. It is stored sparsely as CMSIS-DSP does: per band the first FFT bin,
the number of bins, and the packed weights.
"""
from __future__ import annotations

import dataclasses
import functools

import numpy as np

from .spec import FeatureSpec

_F_SP = 200.0 / 3            # Slaney: linear part, Hz per mel
_MIN_LOG_HZ = 1000.0         # Slaney: the log part starts here
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = np.log(6.4) / 27.0


def hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney mel scale (librosa ``htk=False``)."""
    hz = np.asarray(hz, dtype=np.float64)
    mel = hz / _F_SP
    log_part = hz >= _MIN_LOG_HZ
    return np.where(log_part, _MIN_LOG_MEL + np.log(np.maximum(hz, 1e-30) / _MIN_LOG_HZ) / _LOGSTEP, mel)


def mel_to_hz(mel: np.ndarray) -> np.ndarray:
    """Inverse of :func:`hz_to_mel`."""
    mel = np.asarray(mel, dtype=np.float64)
    hz = mel * _F_SP
    log_part = mel >= _MIN_LOG_MEL
    return np.where(log_part, _MIN_LOG_HZ * np.exp(_LOGSTEP * (mel - _MIN_LOG_MEL)), hz)


def window(spec: FeatureSpec) -> np.ndarray:
    """Periodic Hamming window, ``(n_fft,) float32``: ``0.54 - 0.46 cos(2 pi n / n_fft)``."""
    n = np.arange(spec.n_fft, dtype=np.float64)
    return (0.54 - 0.46 * np.cos(2.0 * np.pi * n / spec.n_fft)).astype(np.float32)


def mel_dense(spec: FeatureSpec) -> np.ndarray:
    """Mel filterbank ``(n_mels, n_bins) float32``, equal to librosa's Slaney filterbank."""
    fft_hz = np.linspace(0.0, spec.sample_rate / 2.0, spec.n_bins)
    mel_pts = np.linspace(hz_to_mel(spec.fmin), hz_to_mel(spec.fmax), spec.n_mels + 2)
    mel_hz = mel_to_hz(mel_pts)
    fdiff = np.diff(mel_hz)
    ramps = mel_hz[:, None] - fft_hz[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_hz[2:] - mel_hz[:-2]))[:, None]
    return weights.astype(np.float32)


@dataclasses.dataclass(frozen=True)
class SparseMel:
    """A mel filterbank stored by band: ``weights[offsets[m] : offsets[m] + lengths[m]]``
    multiply bins ``starts[m] ...``. All arrays are C-contiguous for the kernel."""

    starts: np.ndarray    # (n_mels,) int32, first FFT bin of each band
    lengths: np.ndarray   # (n_mels,) int32, bins in each band (may be 0)
    offsets: np.ndarray   # (n_mels,) int32, index of each band's first weight
    weights: np.ndarray   # (sum(lengths),) float32, packed

    def to_dense(self, n_bins: int) -> np.ndarray:
        out = np.zeros((len(self.starts), n_bins), dtype=np.float32)
        for m, (s, n, o) in enumerate(zip(self.starts, self.lengths, self.offsets)):
            out[m, s:s + n] = self.weights[o:o + n]
        return out


def sparse_from_dense(dense: np.ndarray) -> SparseMel:
    """Pack each row's run from its first to its last non-zero weight."""
    starts, lengths, chunks = [], [], []
    for row in dense:
        nz = np.flatnonzero(row)
        s, e = (int(nz[0]), int(nz[-1]) + 1) if nz.size else (0, 0)
        starts.append(s)
        lengths.append(e - s)
        chunks.append(row[s:e])
    lengths_a = np.asarray(lengths, dtype=np.int32)
    offsets = np.concatenate([[0], np.cumsum(lengths_a)[:-1]]).astype(np.int32)
    weights = np.ascontiguousarray(np.concatenate(chunks).astype(np.float32))
    return SparseMel(np.asarray(starts, dtype=np.int32), lengths_a, offsets, weights)


@functools.lru_cache(maxsize=8)
def mel_sparse(spec: FeatureSpec) -> SparseMel:
    """The filterbank of :func:`mel_dense`, stored sparsely."""
    return sparse_from_dense(mel_dense(spec))
