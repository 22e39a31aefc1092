"""Public feature API (names fixed: other code and outside checks use them).

TEMPORARY: delegates to the numpy reference until the C kernel lands (issue 2).
"""
from __future__ import annotations

import numpy as np

from . import reference
from .spec import DEFAULT_SPEC, FeatureSpec


def logmel_frames(x: np.ndarray, *, spec: FeatureSpec = DEFAULT_SPEC) -> np.ndarray:
    return reference.logmel_frames(x, spec).astype(np.float32)


def context_vectors(frames: np.ndarray, *, spec: FeatureSpec = DEFAULT_SPEC) -> np.ndarray:
    return reference.context_vectors(frames, spec).astype(np.float32)


def clip_features(x: np.ndarray, *, spec: FeatureSpec = DEFAULT_SPEC) -> np.ndarray:
    return reference.clip_features(x, spec).astype(np.float32)
