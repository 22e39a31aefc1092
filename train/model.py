"""The seed's fully connected autoencoder (SPEC section 3), in torch.

640 -> 128 -> 128 -> 8 -> 128 -> 128 -> 640; every hidden layer (the bottleneck too) is
Linear + BatchNorm1d + ReLU, the output layer is linear. Saved as a plain state dict
(``model.pt``, loadable with ``torch.load(weights_only=True)``) plus ``model.json``;
never a pickled module.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch
from torch import nn


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Layer sizes. ``hidden`` are the encoder's layers; the decoder mirrors them.
    ``input_size`` is the feature spec's vector size; :func:`train.pipeline.train_run` sets
    it from the spec it trains on (640 is the default spec's 5 x 128)."""

    input_size: int = 640
    hidden: tuple[int, ...] = (128, 128)
    bottleneck: int = 8
    batchnorm_eps: float = 1e-5

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["hidden"] = list(self.hidden)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        d = dict(d)
        d["hidden"] = tuple(d["hidden"])
        return cls(**d)

    @property
    def layer_sizes(self) -> list[int]:
        """Sizes from input to output, e.g. ``[640, 128, 128, 8, 128, 128, 640]``."""
        return [self.input_size, *self.hidden, self.bottleneck, *reversed(self.hidden), self.input_size]


class Autoencoder(nn.Module):
    """``forward(x: (batch, input_size) float32) -> (batch, input_size) float32``."""

    def __init__(self, config: ModelConfig = ModelConfig()):
        super().__init__()
        self.config = config
        sizes = config.layer_sizes
        layers: list[nn.Module] = []
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(n_in, n_out))
            if i < len(sizes) - 2:
                layers += [nn.BatchNorm1d(n_out, eps=config.batchnorm_eps), nn.ReLU()]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def save(model: Autoencoder, directory: str | Path) -> None:
    """Write ``model.pt`` (state dict) and ``model.json`` (config) into ``directory``."""
    directory = Path(directory)
    torch.save(model.state_dict(), directory / "model.pt")
    (directory / "model.json").write_text(json.dumps(model.config.to_dict(), indent=2) + "\n")


def load(directory: str | Path) -> Autoencoder:
    """Load a model saved by :func:`save`, in eval mode, without unpickling objects."""
    directory = Path(directory)
    config = ModelConfig.from_dict(json.loads((directory / "model.json").read_text()))
    model = Autoencoder(config)
    model.load_state_dict(torch.load(directory / "model.pt", weights_only=True, map_location="cpu"))
    return model.eval()
