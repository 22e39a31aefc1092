"""The feature cache: log-mel frames of each clip, computed once, memory-mapped in training.

Each clip's frames come from :func:`edge.features.logmel_frames`, the same C kernel the
board runs, so training and serving cannot drift apart. They are stored as one float32
``.npy`` file per clip (``n_frames x n_mels``, 5x smaller than its context vectors) under
``<cache>/<spec digest>/<source>/``, keyed by the file's absolute path, size and
modification time: an edited recording is recomputed, a changed spec uses another folder.

Training never holds the dataset in memory: :class:`VectorSet` indexes (clip, frame)
pairs and builds the 640-value context vectors of a batch on the fly from memory-mapped
frames, so a dataset larger than memory trains (the DCASE baseline materialises every
vector and runs out of memory).
"""
from __future__ import annotations

import concurrent.futures as cf
import hashlib
import multiprocessing
import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from edge.errors import AudioError
from edge.spec import DEFAULT_SPEC, FeatureSpec


def default_cache_dir() -> Path:
    """``$EDGE_AD_CACHE``, else ``$XDG_CACHE_HOME/edge-ad/features``, else
    ``~/.cache/edge-ad/features``: shared by every run on the machine, so a dataset's
    features are computed once however many models are trained on it."""
    if os.environ.get("EDGE_AD_CACHE"):
        return Path(os.environ["EDGE_AD_CACHE"]).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "edge-ad" / "features"


def _compute(path: str, out: str, spec_json: str, channel: int, mix: bool) -> int:
    """Worker: frames of one file written atomically to ``out``; returns the frame count."""
    from edge import audio, features

    spec = FeatureSpec.from_json(spec_json)
    # Streamed in blocks into a memory-mapped .npy: a long recording in a dataset costs
    # disk, not memory. The frames are read off the context vectors (each vector is
    # context_frames frames, oldest first), the same kernel output as logmel_frames.
    stream = audio.AudioStream(path, spec=spec, channel=channel, mix=mix)
    n_frames, c, m = spec.n_frames(stream.n_samples), spec.context_frames, spec.n_mels
    tmp = f"{out}.{os.getpid()}.tmp"
    try:
        frames = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32,
                                           shape=(n_frames, m))
        i = 0
        for v in features.stream_vectors(stream, spec=spec):
            if i == 0:
                frames[:c] = v[0].reshape(c, m)
                i, v = c, v[1:]
            frames[i:i + len(v)] = v[:, (c - 1) * m:]
            i += len(v)
        if i != n_frames:
            raise RuntimeError(f"{path}: {i} frames streamed, {n_frames} expected")
        frames.flush()
        del frames
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return n_frames


class FeatureCache:
    """Frames on disk for one feature spec and channel choice.

    Args:
        root: cache folder (default :func:`default_cache_dir`).
        spec: the feature spec; its digest names the sub-folder.
        channel, mix: which channel of multi-channel files (SPEC section 1).
    """

    def __init__(self, root: str | os.PathLike | None = None, *, spec: FeatureSpec = DEFAULT_SPEC,
                 channel: int = 0, mix: bool = False):
        self.root = Path(root).expanduser() if root is not None else default_cache_dir()
        self.spec = spec
        self.channel = channel
        self.mix = mix
        source = "mix" if mix else f"ch{channel}"
        self.dir = self.root / spec.digest[:16] / source

    def frames_path(self, path: str | os.PathLike) -> Path:
        """Where the frames of ``path`` live; the name changes when the file changes."""
        p = Path(path).resolve()
        try:
            st = p.stat()
        except OSError as e:
            raise AudioError(f"{p}: cannot read ({e.strerror})") from None
        key = hashlib.sha256(f"{p}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:32]
        return self.dir / key[:2] / f"{key}.npy"

    def ensure(self, paths: Iterable[str | os.PathLike], *, jobs: int = 2,
               progress: bool = True) -> None:
        """Compute the frames of every path not cached yet, in ``jobs`` processes.

        Raises:
            AudioError: listing every file that could not be read, after the rest are done.
        """
        from tqdm import tqdm

        todo = []
        for p in paths:
            out = self.frames_path(p)
            if not out.exists():
                out.parent.mkdir(parents=True, exist_ok=True)
                todo.append((str(Path(p).resolve()), str(out)))
        if not todo:
            return
        args = (self.spec.to_json(), self.channel, self.mix)
        errors: list[str] = []
        bar = tqdm(total=len(todo), desc="features", unit="clip", disable=not progress)
        if jobs <= 1 or len(todo) == 1:
            for src, out in todo:
                try:
                    _compute(src, out, *args)
                except AudioError as e:
                    errors.append(str(e))
                bar.update()
        else:
            # spawn, not fork: the parent may already hold torch's thread pools.
            ctx = multiprocessing.get_context("spawn")
            with cf.ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
                futures = [pool.submit(_compute, src, out, *args) for src, out in todo]
                for fut in cf.as_completed(futures):
                    try:
                        fut.result()
                    except AudioError as e:
                        errors.append(str(e))
                    bar.update()
        bar.close()
        if errors:
            shown = "\n  ".join(sorted(errors)[:20])
            more = f"\n  ... and {len(errors) - 20} more" if len(errors) > 20 else ""
            raise AudioError(f"{len(errors)} of {len(todo)} files could not be used:\n  {shown}{more}")

    def frames(self, path: str | os.PathLike) -> np.ndarray:
        """``(n_frames, n_mels) float32`` frames of ``path``, memory-mapped read-only
        (computed now if missing)."""
        out = self.frames_path(path)
        if not out.exists():
            out.parent.mkdir(parents=True, exist_ok=True)
            _compute(str(Path(path).resolve()), str(out), self.spec.to_json(), self.channel, self.mix)
        return np.load(out, mmap_mode="r")

    def vectors(self, path: str | os.PathLike) -> np.ndarray:
        """``(n_vectors, vector_size) float32`` context vectors of ``path``."""
        return context_windows(self.frames(path), self.spec.context_frames)


def context_windows(frames: np.ndarray, context: int, *, starts: np.ndarray | None = None) -> np.ndarray:
    """Context vectors ``(len(starts), context * n_mels) float32`` from ``(n_frames, n_mels)``
    frames: ``frames[s:s+context]`` flattened oldest first (as :func:`edge.features.context_vectors`)."""
    n = frames.shape[0] - context + 1
    if starts is None:
        starts = np.arange(max(n, 0))
    rows = np.asarray(starts)[:, None] + np.arange(context)[None, :]
    return np.asarray(frames[rows.ravel()], dtype=np.float32).reshape(len(starts), -1)


def aligned_empty(shape: tuple[int, int], *, align: int = 64) -> np.ndarray:
    """An uninitialised float32 array whose data starts on an ``align``-byte boundary.

    Batches go to torch without a copy; the matrix kernels take different paths (and sum in
    a different order) for differently aligned inputs, so a fixed alignment keeps training
    bit-reproducible whatever the allocator happened to return."""
    n_bytes = int(np.prod(shape)) * 4
    raw = np.empty(n_bytes + align, dtype=np.uint8)
    start = (-raw.ctypes.data) % align
    return raw[start:start + n_bytes].view(np.float32).reshape(shape)


class VectorSet:
    """The context vectors of several clips, indexed without materialising them.

    Vector ``k`` is ``(clip_of[k], start[k])``: frames ``start .. start+context-1`` of that
    clip. ``gather(indices)`` builds a batch from the memory-mapped frames.
    """

    def __init__(self, cache: FeatureCache, paths: Sequence[str | os.PathLike]):
        self.context = cache.spec.context_frames
        self.frames = [cache.frames(p) for p in paths]
        self.counts = np.array([max(f.shape[0] - self.context + 1, 0) for f in self.frames], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.counts)])
        self.dim = cache.spec.vector_size

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def gather(self, indices: np.ndarray) -> np.ndarray:
        """``(len(indices), dim) float32`` vectors, in the order of ``indices``."""
        indices = np.asarray(indices, dtype=np.int64)
        clip = np.searchsorted(self.offsets, indices, side="right") - 1
        start = indices - self.offsets[clip]
        out = aligned_empty((len(indices), self.dim))
        order = np.argsort(clip, kind="stable")
        uniq, first = np.unique(clip[order], return_index=True)
        for c, a, b in zip(uniq, first, np.r_[first[1:], len(order)]):
            sel = order[a:b]
            out[sel] = context_windows(self.frames[c], self.context, starts=start[sel])
        return out

    def clip_vectors(self, c: int) -> np.ndarray:
        """All vectors of clip ``c``, ``(counts[c], dim) float32``."""
        return context_windows(self.frames[c], self.context)
