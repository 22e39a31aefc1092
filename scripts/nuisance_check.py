#!/usr/bin/env python3
"""What each of the generator's clip-to-clip nuisances costs the ``mel-mean`` Gaussian on one
machine ID: the ID's normal and abnormal clips drawn again with one nuisance held still.

A diagnosis, not a detector: a real floor cannot hold its background still. It says whether
one nuisance hides the faults (and an invariance to it would be worth building) or several
share the blame. Per setting, 400 fresh normal clips (``make_clip`` indices 1000-1399) fit
the Gaussian (Ledoit-Wolf; also on the first 87, a training set's size), and the ID's 30
anomalies are scored against 100 other normals (indices 100-199):

- ``as generated``: the plant's own generator;
- ``no clanks``: the factory background without its random impulsive events;
- ``fixed hums``: the plant's other machines at a fixed level in every clip;
- ``fixed tilt``: the background's pink noise with the same spectral slope in every clip;
- ``fixed speed``: the machine's speed without its clip-to-clip spread and slow wander;
- ``all four fixed``.

The nuisances are held still through the random generator the background is drawn from:
a stand-in makes the nuisance's draw as usual, so every later draw of the clip is the one
the plant made, and answers it with a constant instead (a slope and hum levels at their
mean, no clanks), so the generator's own code runs unchanged and each setting's clips
differ from the generated ones by that nuisance alone. The speed's spread and wander
are set to 0 in the machine's parameters (its draws are made all the same).

    .venv/bin/python scripts/nuisance_check.py --plant D --id 0

About 3 minutes for the six settings on a 2-core AMD EPYC (2 processes).
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import dataclasses
import multiprocessing
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure_detectors import PLANTS  # noqa: E402

SETTINGS = {
    "as generated": frozenset(),
    "no clanks": frozenset({"clanks"}),
    "fixed hums": frozenset({"hums"}),
    "fixed tilt": frozenset({"tilt"}),
    "fixed speed": frozenset({"speed"}),
    "all four fixed": frozenset({"clanks", "hums", "tilt", "speed"}),
}


class StillBackground:
    """The background's random generator with some nuisances held still. In
    ``train.synth.factory_background`` the slope is the one scalar ``standard_normal()``, the
    hums' levels the ``normal(0, 2)`` draws, the clanks' count the ``poisson`` draw. Each is
    drawn from the real generator (so the draws after it stay the plant's own) and answered
    with a constant: the slope's and levels' mean, no clanks. Every other draw goes to the
    real generator."""

    def __init__(self, rng: np.random.Generator, still: frozenset[str]):
        self._rng, self._still = rng, still

    def standard_normal(self, *args: Any, **kw: Any) -> Any:
        value = self._rng.standard_normal(*args, **kw)
        return 0.0 if not args and not kw and "tilt" in self._still else value

    def normal(self, loc: float = 0.0, scale: float = 1.0, *args: Any, **kw: Any) -> Any:
        value = self._rng.normal(loc, scale, *args, **kw)
        return loc if not args and not kw and "hums" in self._still else value

    def poisson(self, *args: Any, **kw: Any) -> Any:
        value = self._rng.poisson(*args, **kw)
        return 0 if "clanks" in self._still else value

    def __getattr__(self, name: str) -> Any:
        return getattr(self._rng, name)


def _clip_mean(job: tuple[str, int, bool, int, frozenset[str]]) -> np.ndarray:
    import train.synth as synth
    from edge.features import clip_features
    from edge.spec import DEFAULT_SPEC as spec

    plant, number, abnormal, index, still = job
    o = PLANTS[plant]
    background, params = synth.factory_background, synth.machine_params
    if still - {"speed"}:
        synth.factory_background = lambda rng, n, **kw: background(StillBackground(rng, still), n, **kw)
    if "speed" in still:
        synth.machine_params = lambda *a, **kw: dataclasses.replace(params(*a, **kw), speed_spread=0.0, wander=0.0)
    try:
        x, _ = synth.make_clip(o["machine"], number, abnormal=abnormal, index=index, seed=o["seed"],
                               snr_db=o["snr_db"], faults=tuple(o["faults"] or synth.FAULTS))
    finally:
        synth.factory_background, synth.machine_params = background, params
    return clip_features(x, spec=spec)[:, :spec.n_mels].mean(0)


def main() -> None:
    from sklearn.covariance import LedoitWolf
    from sklearn.metrics import roc_auc_score

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--plant", required=True, choices=list(PLANTS))
    ap.add_argument("--id", type=int, required=True, help="machine ID number, e.g. 0 for id_00")
    ap.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS), metavar="S")
    args = ap.parse_args()
    if args.id not in PLANTS[args.plant]["ids"]:
        sys.exit(f"nuisance_check: --id {args.id}: plant {args.plant} has IDs {PLANTS[args.plant]['ids']}")
    with cf.ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        for name in args.settings:
            still = SETTINGS[name]

            def means(abnormal: bool, indices: range) -> np.ndarray:
                jobs = [(args.plant, args.id, abnormal, k, still) for k in indices]
                return np.array(list(pool.map(_clip_mean, jobs, chunksize=8)))

            fit, normals, anomalies = means(False, range(1000, 1400)), means(False, range(100, 200)), means(True, range(30))
            y = np.r_[np.zeros(len(normals)), np.ones(len(anomalies))]
            aucs = []
            for n in (87, 400):
                lw = LedoitWolf().fit(fit[:n])
                d = np.r_[normals, anomalies] - lw.location_
                aucs.append(roc_auc_score(y, np.einsum("ni,ij,nj->n", d, lw.precision_, d)))
            print(f"{args.plant} id_{args.id:02d} {name:15s} AUC, Gaussian on 87 / 400 normals: "
                  f"{aucs[0]:.3f} / {aucs[1]:.3f}", flush=True)


if __name__ == "__main__":
    main()
