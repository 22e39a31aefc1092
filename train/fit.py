"""The seed's training recipe (SPEC section 3), and scoring clips with a trained model.

Adam (learning rate 1e-2, betas 0.8 and 0.999: MATLAB's GradientDecayFactor 0.8), the
learning rate times 0.7 every 5 epochs, 30 epochs, a mini-batch of half the training
vectors, shuffled every epoch, loss half the mean squared error; the validation loss on
held-out normal clips after every epoch. Seeded: the same seed, data and thread count give
the same weights.
"""
from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import logging
import math
import time
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from edge import scoring

from .cache import VectorSet
from .model import Autoencoder, ModelConfig


log = logging.getLogger(__name__)

#: The seed's batch is half the training vectors, which grows with the dataset: on a full
#: MIMII machine type (over a million vectors) one batch alone would be gigabytes, and a
#: dataset larger than memory could never train. Above this many vectors (160 MiB of
#: float32 input, about 2.7 GB peak with activations and gradients) the batch stops
#: growing. The default demo (91,464 vectors) stays below it, so it trains as the seed does.
MAX_DEFAULT_BATCH = 65536


def default_batch_size(n_vectors: int) -> int:
    """The seed's mini-batch (half the training vectors), capped at ``MAX_DEFAULT_BATCH``."""
    return max(2, min(math.ceil(n_vectors / 2), MAX_DEFAULT_BATCH))


@dataclasses.dataclass(frozen=True)
class Recipe:
    """Training settings; the defaults are the seed's.

    ``batch_size=None`` means half the training vectors (the seed's choice), at most
    :data:`MAX_DEFAULT_BATCH` (see :func:`default_batch_size`).
    """

    epochs: int = 30
    lr: float = 1e-2
    betas: tuple[float, float] = (0.8, 0.999)
    lr_step_epochs: int = 5
    lr_factor: float = 0.7
    batch_size: int | None = None
    seed: int = 0
    threads: int | None = None
    #: "step" (the seed's: times ``lr_factor`` every ``lr_step_epochs``) or "cosine"
    #: (cosine annealing from ``lr`` towards 0 over ``epochs``)
    schedule: str = "step"
    #: stop when the validation loss has not improved for this many epochs and keep the
    #: weights of the best epoch (None: the seed's fixed number of epochs)
    patience: int | None = None

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        return d


#: The same network trained properly (``edge-ad train --detector ae`` and the heads built on
#: it): mini-batches of 512 vectors (about 180 optimiser steps an epoch on the demo plant
#: instead of the seed's 2), Adam at 1e-3 with torch's default betas, cosine annealing, and
#: early stopping on the validation loss with the best epoch's weights kept.
TRAINED = Recipe(epochs=30, lr=1e-3, betas=(0.9, 0.999), batch_size=512, schedule="cosine",
                 patience=5)


def set_determinism(seed: int, threads: int | None) -> None:
    """Seed torch and numpy, deterministic kernels, a fixed thread count (results on CPU
    depend on how sums are split across threads)."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    torch.use_deterministic_algorithms(True)
    if threads:
        torch.set_num_threads(threads)


_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4      # glibc mallopt parameters (malloc.h)


@contextlib.contextmanager
def _keep_freed_memory() -> Iterator[None]:
    """Let glibc keep large freed blocks for reuse while training.

    With the seed's batch (half the training vectors) every step allocates and frees tensors
    of ~100 MB; glibc serves those with mmap and returns them with munmap, so each step
    page-faults them in again: measured here, 40% of the training time went to the kernel.
    Taking large blocks from the heap and not trimming it makes the steps reuse memory
    (peak RSS about 10% higher). Only on glibc; elsewhere this does nothing. The defaults
    are restored afterwards (the trim then returns the memory)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        yield
        return
    mallopt(_M_MMAP_MAX, 0)
    mallopt(_M_TRIM_THRESHOLD, 1 << 30)
    try:
        yield
    finally:
        mallopt(_M_MMAP_MAX, 65536)
        mallopt(_M_TRIM_THRESHOLD, 128 * 1024)
        try:
            libc.malloc_trim(0)
        except AttributeError:
            pass


def _half_mse(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return 0.5 * torch.mean((out - target) ** 2)


@torch.no_grad()
def mean_loss(model: Autoencoder, vectors: VectorSet, *, chunk: int = 32768) -> float:
    """Half MSE over every vector of ``vectors`` (eval mode), accumulated in float64."""
    model.eval()
    total, n = 0.0, len(vectors)
    for a in range(0, n, chunk):
        x = torch.from_numpy(vectors.gather(np.arange(a, min(a + chunk, n))))
        total += float(torch.sum((model(x) - x).double() ** 2))
    return 0.5 * total / (n * vectors.dim) if n else math.nan


@torch.no_grad()
def finalize_batchnorm(model: Autoencoder, vectors: VectorSet, *, batch_size: int,
                       seed: int = 0) -> None:
    """Recompute BatchNorm statistics over the whole training set with the final weights,
    as MATLAB's trainNetwork does when training ends; torch's running averages after only a
    few dozen steps (2 per epoch with the seed's batch) would still remember early weights.

    The batches are shuffled: the average of per-batch variances equals the population
    variance only when every batch is a fair sample (batches in storage order would each
    hold one machine ID and miss the spread between IDs)."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None           # cumulative average over the batches below
    model.train()
    n = len(vectors)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).numpy()
    for a in range(0, n, batch_size):
        idx = np.sort(perm[a:a + batch_size])
        if len(idx) >= 2:
            model(torch.from_numpy(vectors.gather(idx)))
    for m in norms:
        m.momentum = 0.1
    model.eval()


def fit(train: VectorSet, val: VectorSet | None, *, config: ModelConfig = ModelConfig(),
        recipe: Recipe = Recipe(), progress: bool = True) -> tuple[Autoencoder, list[dict[str, float]]]:
    """Train an autoencoder on ``train`` vectors.

    Returns:
        The model in eval mode and one history row per epoch
        ``{epoch, lr, train_loss, val_loss, seconds}``.
    """
    with _keep_freed_memory():
        return _fit(train, val, config=config, recipe=recipe, progress=progress)


def _fit(train: VectorSet, val: VectorSet | None, *, config: ModelConfig, recipe: Recipe,
         progress: bool) -> tuple[Autoencoder, list[dict[str, float]]]:
    from tqdm import tqdm

    set_determinism(recipe.seed, recipe.threads)
    n = len(train)
    if n < 2:
        raise ValueError(f"{n} training vectors; expected at least 2")
    batch = recipe.batch_size or default_batch_size(n)
    if recipe.batch_size is None and batch < math.ceil(n / 2):
        log.info("mini-batch %d vectors (half the %d training vectors would be %d; "
                 "capped so memory does not grow with the dataset)", batch, n, math.ceil(n / 2))
    batch = min(batch, n)
    model = Autoencoder(config)
    # With the seed's batch (half the data) an epoch is only two steps, so torch's default
    # running-average momentum (0.1) would leave the BatchNorm statistics used for the
    # per-epoch validation loss many steps stale; track recent batches instead. The final
    # statistics are recomputed over all training vectors (finalize_batchnorm).
    if n / batch < 16:
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.momentum = 0.5
    opt = torch.optim.Adam(model.parameters(), lr=recipe.lr, betas=recipe.betas)
    if recipe.schedule == "cosine":
        sched: Any = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=recipe.epochs)
    elif recipe.schedule == "step":
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=recipe.lr_step_epochs,
                                                gamma=recipe.lr_factor)
    else:
        raise ValueError(f"schedule {recipe.schedule!r}: expected 'step' or 'cosine'")
    stop_early = recipe.patience is not None and val is not None and len(val) > 0
    best: tuple[float, int, dict[str, torch.Tensor]] | None = None
    gen = torch.Generator().manual_seed(recipe.seed)
    history: list[dict[str, float]] = []
    bar = tqdm(range(recipe.epochs), desc="train", unit="epoch", disable=not progress)
    for epoch in bar:
        start = time.perf_counter()
        model.train()
        perm = torch.randperm(n, generator=gen).numpy()
        total, seen = 0.0, 0
        for a in range(0, n, batch):
            idx = perm[a:a + batch]
            if len(idx) < 2:        # BatchNorm needs two rows; drop a lone remainder
                continue
            # the batch's order does not change its loss or BatchNorm statistics: gather
            # in storage order, which reads the memory-mapped frames sequentially
            x = torch.from_numpy(train.gather(np.sort(idx)))
            opt.zero_grad(set_to_none=True)
            loss = _half_mse(model(x), x)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
            seen += len(idx)
        lr = opt.param_groups[0]["lr"]
        sched.step()
        row = {"epoch": epoch + 1, "lr": lr, "train_loss": total / max(seen, 1),
               "val_loss": mean_loss(model, val) if val is not None and len(val) else math.nan,
               "seconds": time.perf_counter() - start}
        history.append(row)
        bar.set_postfix(train=f"{row['train_loss']:.4f}", val=f"{row['val_loss']:.4f}")
        if stop_early:
            if best is None or row["val_loss"] < best[0]:
                best = (row["val_loss"], epoch + 1,
                        {k: v.detach().clone() for k, v in model.state_dict().items()})
            elif epoch + 1 - best[1] >= recipe.patience:
                log.info("early stop after epoch %d: validation loss best at epoch %d (%.5f)",
                         epoch + 1, best[1], best[0])
                break
    if best is not None:
        model.load_state_dict(best[2])
        history[best[1] - 1]["best"] = True
    finalize_batchnorm(model, train, batch_size=batch, seed=recipe.seed)
    return model, history


class PCABaseline:
    """A linear baseline: PCA with the autoencoder's bottleneck size on the same vectors,
    scored the same way. Fitted from the streamed covariance (640 x 640), so it scales to
    the same data sizes as training."""

    def __init__(self, vectors: VectorSet, *, components: int, chunk: int = 32768):
        n, d = len(vectors), vectors.dim
        total = np.zeros(d)
        scatter = np.zeros((d, d))
        for a in range(0, n, chunk):
            x = vectors.gather(np.arange(a, min(a + chunk, n))).astype(np.float64)
            total += x.sum(0)
            scatter += x.T @ x
        self.mean = total / n
        cov = scatter / n - np.outer(self.mean, self.mean)
        eigval, eigvec = np.linalg.eigh(cov)
        self.components = eigvec[:, ::-1][:, :components].T.copy()     # (k, d)
        self.explained = float(eigval[::-1][:components].sum() / eigval.sum())

    def reconstruct(self, x: np.ndarray) -> np.ndarray:
        """``(n, d) float32`` projection of ``x`` onto the principal subspace."""
        c = (x - self.mean) @ self.components.T
        return (c @ self.components + self.mean).astype(np.float32)

    def score_clips(self, vectors: VectorSet) -> np.ndarray:
        """``(n_clips,) float64`` scores, ``A(X)`` of each clip (SPEC 4)."""
        return np.array([scoring.clip_score(v, self.reconstruct(v))
                         for v in (vectors.clip_vectors(c) for c in range(len(vectors.counts)))])


def observed_fpr(scores: Sequence[float], cutoff: float) -> float:
    """Fraction of (normal) scores above the cutoff."""
    s = np.asarray(scores, dtype=np.float64)
    return float(np.mean(s > cutoff)) if s.size else math.nan
