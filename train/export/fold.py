"""BatchNorm folded into the Linear before it: the inference-time MLP that gets exported.

In eval mode ``BN(W x + b) = g * (W x + b - mu) / sqrt(var + eps) + beta``, an affine map,
so each Linear + BatchNorm1d pair becomes one Linear with
``W' = diag(k) W`` and ``b' = k (b - mu) + beta``, ``k = g / sqrt(var + eps)``.
Folding before conversion matters for int8: the converters would otherwise quantise the
BatchNorm as a separate op (or fold it themselves after choosing ranges), and one int8
matmul per layer is what a Cortex-A core runs fastest. The arithmetic is done in float64
and rounded once to float32.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torch import nn


@dataclasses.dataclass(frozen=True)
class Dense:
    """One folded layer: ``y = x @ weight.T + bias``, then ReLU when ``relu``.

    Attributes:
        weight: ``(out, in) float32``, torch's layout.
        bias: ``(out,) float32``.
        relu: whether a ReLU follows.
    """

    weight: np.ndarray
    bias: np.ndarray
    relu: bool


def fold_batchnorm(model: nn.Module) -> list[Dense]:
    """The layers of an :class:`~train.model.Autoencoder` (or any ``Sequential`` of Linear,
    BatchNorm1d and ReLU) with every BatchNorm folded into the Linear before it.

    Uses the running statistics (eval-mode behaviour) whatever mode ``model`` is in.

    Raises:
        ValueError: a module other than Linear, BatchNorm1d (right after a Linear) or ReLU.
    """
    modules = list(model.net if hasattr(model, "net") else model)
    layers: list[dict] = []
    for m in modules:
        if isinstance(m, nn.Linear):
            w = m.weight.detach().double().cpu().numpy()
            b = (m.bias.detach().double().cpu().numpy() if m.bias is not None
                 else np.zeros(w.shape[0]))
            layers.append({"weight": w, "bias": b, "relu": False, "bn": False})
        elif isinstance(m, nn.BatchNorm1d):
            if not layers or layers[-1]["bn"] or layers[-1]["relu"]:
                raise ValueError("BatchNorm1d must follow a Linear directly to be folded")
            if m.running_mean is None or m.running_var is None:
                raise ValueError("BatchNorm1d without running statistics cannot be folded")
            mean = m.running_mean.detach().double().cpu().numpy()
            var = m.running_var.detach().double().cpu().numpy()
            gamma = (m.weight.detach().double().cpu().numpy() if m.affine
                     else np.ones_like(mean))
            beta = m.bias.detach().double().cpu().numpy() if m.affine else np.zeros_like(mean)
            k = gamma / np.sqrt(var + m.eps)
            last = layers[-1]
            last["weight"] = last["weight"] * k[:, None]
            last["bias"] = k * (last["bias"] - mean) + beta
            last["bn"] = True
        elif isinstance(m, nn.ReLU):
            if not layers or layers[-1]["relu"]:
                raise ValueError("ReLU must follow a Linear (or its BatchNorm1d)")
            layers[-1]["relu"] = True
        else:
            raise ValueError(f"cannot fold a {type(m).__name__}; expected Linear, "
                             "BatchNorm1d or ReLU")
    if not layers:
        raise ValueError("model has no Linear layer")
    return [Dense(weight=np.ascontiguousarray(d["weight"], dtype=np.float32),
                  bias=np.ascontiguousarray(d["bias"], dtype=np.float32), relu=d["relu"])
            for d in layers]


def folded_module(layers: list[Dense]) -> nn.Sequential:
    """A torch ``Sequential`` of Linear (+ ReLU) holding the folded weights, eval mode.

    ``forward(x: (batch, in) float32) -> (batch, out) float32``.
    """
    modules: list[nn.Module] = []
    for d in layers:
        lin = nn.Linear(d.weight.shape[1], d.weight.shape[0])
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(d.weight))
            lin.bias.copy_(torch.from_numpy(d.bias))
        modules.append(lin)
        if d.relu:
            modules.append(nn.ReLU())
    return nn.Sequential(*modules).eval()


def forward_numpy(layers: list[Dense], x: np.ndarray) -> np.ndarray:
    """The folded MLP in float64 numpy: ``(n, in) -> (n, out) float64``; a reference for tests."""
    y = np.asarray(x, dtype=np.float64)
    for d in layers:
        y = y @ d.weight.astype(np.float64).T + d.bias
        if d.relu:
            y = np.maximum(y, 0.0)
    return y
