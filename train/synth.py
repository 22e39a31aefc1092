"""A synthetic plant: rotating machines in a factory, written in MIMII layout.

The real MIMII data cannot be downloaded here, so demos and tests use this. It is built to
be physically plausible and hard enough to be worth learning:

- **Machine** (one per ID, its mechanics drawn from the ID's own generator): shaft
  harmonics, a blade-pass tone (blades x shaft rate) with its harmonics, and the motor's
  electrical hum, all following a shaft speed that wanders slowly within a clip and differs
  from clip to clip (load); broadband flow noise, amplitude-modulated at the blade-pass rate;
  everything coloured by a few structural resonances of the housing.
- **Factory background**: pink noise, hums of other machines, and impulsive events
  (clanks, knocks) at random times, mixed in at the given signal-to-noise ratio.
- **Faults** (abnormal clips), one family per clip at a random severity: bearing
  impulses (at a defect frequency, ringing a high resonance), imbalance (a stronger
  shaft tone and amplitude modulation once per revolution), a higher-pitched tone (the
  seed's fan), rubbing (friction bursts once per revolution).

IDs differ in mechanics, in how much they vary in normal operation and in how loud their
faults tend to be, so some IDs are easy and some are hard. Everything is drawn from
``numpy.random.Generator`` seeded by (seed, ID, label, index): the same seed gives the
same files, byte for byte, and clips can be made in any order.
"""
from __future__ import annotations

import copy
import dataclasses
import math
import os
import zlib
from pathlib import Path
from typing import Sequence

import numpy as np
import scipy.signal as sps

SAMPLE_RATE = 16000
FAULTS = ("bearing", "imbalance", "tone", "rubbing")
#: Fault families the default plant never draws (``--faults``): the detectors' defaults were
#: chosen on the four above, so plants with these measure faults nobody tuned on.
#: looseness: a loose mount rattles at half and whole shaft orders (sub-harmonics, a comb of
#: shaft harmonics, knocks once per turn); cavitation: vapour bubbles collapsing in the flow,
#: random crackle in 2-7 kHz whose rate follows the blade pass.
HELD_OUT_FAULTS = ("looseness", "cavitation")


@dataclasses.dataclass(frozen=True)
class MachineParams:
    """The mechanics of one machine ID."""

    shaft_hz: float                 # nominal rotation rate
    blades: int                     # blade count: blade-pass tone = blades * shaft rate
    shaft_amps: tuple[float, ...]   # amplitudes of shaft harmonics 1x, 2x, ...
    bpf_amps: tuple[float, ...]     # amplitudes of blade-pass harmonics
    hum_hz: float                   # mains frequency of the motor (50 or 60 Hz), hum at 2x
    hum_amp: float
    flow_amp: float                 # broadband flow noise level relative to the tones
    flow_tilt: float                # spectral slope of the flow noise (1 = pink)
    resonances: tuple[tuple[float, float, float], ...]   # (Hz, Q, gain)
    speed_spread: float             # clip-to-clip relative speed spread (load changes)
    wander: float                   # within-clip relative speed wander
    fault_db: tuple[float, float]   # range of fault level in dB relative to the machine
    snr_offset_db: float            # this ID sits this much closer to/further from the mic


def _rng(seed: int, *keys: object) -> np.random.Generator:
    return np.random.default_rng([seed, *(zlib.crc32(str(k).encode()) for k in keys)])


def machine_params(machine: str, id_number: int, *, seed: int = 0) -> MachineParams:
    """Draw the mechanics of one machine ID; IDs also differ in difficulty."""
    rng = _rng(seed, machine, id_number, "mechanics")
    n_shaft = 6
    shaft_amps = tuple(float(v) for v in rng.uniform(0.2, 1.0, n_shaft) / np.arange(1, n_shaft + 1) ** rng.uniform(0.8, 1.6))
    n_bpf = 4
    bpf_amps = tuple(float(v) for v in rng.uniform(0.8, 3.0) * rng.uniform(0.3, 1.0, n_bpf) / np.arange(1, n_bpf + 1) ** rng.uniform(0.7, 1.4))
    n_res = int(rng.integers(3, 7))
    resonances = tuple((float(f), float(q), float(g)) for f, q, g in zip(
        np.exp(rng.uniform(np.log(250), np.log(5000), n_res)), rng.uniform(5, 30, n_res),
        rng.uniform(1.0, 4.0, n_res)))
    # Difficulty: how much normal operation varies and how loud faults get. It steps by the
    # golden ratio from ID to ID (from a seeded start) so neighbouring IDs differ: the plant
    # has easy and hard IDs, as MIMII does.
    start = float(_rng(seed, machine, "difficulty").uniform())
    difficulty = (start + 0.618034 * id_number / 2) % 1.0
    return MachineParams(
        shaft_hz=float(rng.uniform(15.0, 40.0)), blades=int(rng.integers(3, 10)),
        shaft_amps=shaft_amps, bpf_amps=bpf_amps,
        hum_hz=float(rng.choice([50.0, 60.0])), hum_amp=float(rng.uniform(0.05, 0.4)),
        flow_amp=float(rng.uniform(0.3, 1.0)), flow_tilt=float(rng.uniform(0.6, 1.4)),
        resonances=resonances,
        speed_spread=0.01 + 0.025 * difficulty, wander=0.002 + 0.006 * difficulty,
        fault_db=(-16.0 - 8.0 * difficulty, 2.0 - 8.0 * difficulty),
        snr_offset_db=float(2.0 - 4.0 * difficulty),
    )


# --- signal pieces -----------------------------------------------------------------------
def coloured_noise(rng: np.random.Generator, n: int, *, tilt: float = 1.0,
                   sr: int = SAMPLE_RATE) -> np.ndarray:
    """Noise with power spectrum ~ 1/f^tilt (1: pink), unit RMS, ``(n,) float64``."""
    spec = rng.standard_normal(n // 2 + 1) + 1j * rng.standard_normal(n // 2 + 1)
    f = np.fft.rfftfreq(n, 1.0 / sr)
    spec *= 1.0 / np.maximum(f, 20.0) ** (tilt / 2.0)
    x = np.fft.irfft(spec, n)
    return x / (np.sqrt(np.mean(x * x)) + 1e-12)


def _slow_walk(rng: np.random.Generator, n: int, *, rel_std: float, sr: int = SAMPLE_RATE,
               corner_hz: float = 0.5) -> np.ndarray:
    """A smooth random curve around 1 with relative std ``rel_std`` (speed wander)."""
    k = max(4, int(n / sr * corner_hz * 4))
    knots = rng.standard_normal(k)
    curve = np.interp(np.linspace(0, k - 1, n), np.arange(k), knots)
    b, a = sps.butter(2, corner_hz / (sr / 2))
    curve = sps.filtfilt(b, a, curve)
    curve = curve / (np.std(curve) + 1e-12)
    return 1.0 + rel_std * curve


def _harmonics(phase: np.ndarray, amps: Sequence[float], rng: np.random.Generator) -> np.ndarray:
    out = np.zeros_like(phase)
    for h, a in enumerate(amps, start=1):
        out += a * np.sin(h * phase + rng.uniform(0, 2 * np.pi))
    return out


def _resonate(x: np.ndarray, resonances: Sequence[tuple[float, float, float]],
              sr: int = SAMPLE_RATE) -> np.ndarray:
    """Add the response of the housing's modes (peaking filters in parallel)."""
    out = x.copy()
    for f, q, g in resonances:
        b, a = sps.iirpeak(min(f, sr / 2 * 0.95), q, fs=sr)
        out += g * sps.lfilter(b, a, x)
    return out


def _bandpass(x: np.ndarray, lo: float, hi: float, sr: int = SAMPLE_RATE) -> np.ndarray:
    sos = sps.butter(4, [lo, min(hi, sr / 2 * 0.95)], btype="band", fs=sr, output="sos")
    return sps.sosfilt(sos, x)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x * x)) + 1e-12)


def machine_sound(params: MachineParams, rng: np.random.Generator, *, n: int,
                  sr: int = SAMPLE_RATE, fault: str | None = None,
                  severity: float = 0.0) -> np.ndarray:
    """One clip of the machine alone, ``(n,) float64``, RMS about 1 before a fault."""
    t = np.arange(n) / sr
    speed = params.shaft_hz * (1.0 + params.speed_spread * rng.standard_normal())
    shaft_hz = speed * _slow_walk(rng, n, rel_std=params.wander, sr=sr)
    shaft_phase = 2 * np.pi * np.cumsum(shaft_hz) / sr
    load = 10 ** (rng.normal(0.0, 1.5) / 20)        # flow noise follows the load, +-1.5 dB

    shaft_amps = np.array(params.shaft_amps)
    if fault == "imbalance":
        shaft_amps = shaft_amps.copy()
        shaft_amps[0] *= 1.0 + 8.0 * severity
        shaft_amps[1] *= 1.0 + 3.0 * severity
    tones = _harmonics(shaft_phase, shaft_amps, rng)
    tones += _harmonics(params.blades * shaft_phase, params.bpf_amps, rng)
    mains = params.hum_hz * (1.0 + 0.0005 * rng.standard_normal())
    tones += params.hum_amp * np.sin(2 * np.pi * 2 * mains * t + rng.uniform(0, 2 * np.pi))

    flow = coloured_noise(rng, n, tilt=params.flow_tilt, sr=sr)
    flow *= 1.0 + 0.3 * np.sin(params.blades * shaft_phase + rng.uniform(0, 2 * np.pi))
    x = tones / _rms(tones) + params.flow_amp * load * flow
    x = _resonate(x, params.resonances, sr=sr)
    x /= _rms(x)
    if fault is None:
        return x

    level = 10 ** ((params.fault_db[0] + severity * (params.fault_db[1] - params.fault_db[0])) / 20)
    if fault == "imbalance":
        # a heavier 1x component shakes the housing: amplitude modulation once per turn
        depth = 0.5 * severity
        return x * (1.0 + depth * np.sin(shaft_phase + rng.uniform(0, 2 * np.pi)))
    if fault == "bearing":
        # impulses at an outer-race defect frequency (3 to 5.5x shaft), each ringing a
        # high-frequency resonance for a few milliseconds
        rate = speed * rng.uniform(3.0, 5.5)
        times = np.arange(rng.uniform(0, 1 / rate), n / sr, 1 / rate)
        times += rng.normal(0, 0.02 / rate, len(times))
        impulses = np.zeros(n)
        idx = np.clip((times * sr).astype(int), 0, n - 1)
        impulses[idx] = rng.uniform(0.5, 1.5, len(idx))
        f_ring, tau = rng.uniform(2500, 6500), rng.uniform(0.5e-3, 2e-3)
        kt = np.arange(int(8 * tau * sr)) / sr
        kernel = np.exp(-kt / tau) * np.sin(2 * np.pi * f_ring * kt)
        fault_sig = sps.fftconvolve(impulses, kernel)[:n]
    elif fault == "tone":
        # the seed's fan: a higher-pitched tone rides on the blade-pass tone
        ratio = rng.uniform(1.3, 3.5)
        f = params.blades * shaft_hz * ratio
        fault_sig = np.sin(2 * np.pi * np.cumsum(f) / sr + rng.uniform(0, 2 * np.pi))
        fault_sig *= 1.0 + 0.2 * _slow_walk(rng, n, rel_std=1.0, sr=sr, corner_hz=2.0) - 0.2
    elif fault == "rubbing":
        # friction bursts once per revolution over part of the turn
        gate = (np.sin(shaft_phase + rng.uniform(0, 2 * np.pi)) > rng.uniform(0.3, 0.8)).astype(float)
        fault_sig = _bandpass(rng.standard_normal(n), rng.uniform(800, 1500), rng.uniform(3000, 6000), sr) * gate
    elif fault == "looseness":
        comb = sum(rng.uniform(0.3, 1.0) / k * np.sin(k * shaft_phase / 2 + rng.uniform(0, 2 * np.pi))
                   for k in range(1, 12))
        knock = np.maximum(np.sin(shaft_phase + rng.uniform(0, 2 * np.pi)), 0.0) ** 16
        fault_sig = comb + 2.0 * _bandpass(rng.standard_normal(n), 200, 1200, sr) * knock
    elif fault == "cavitation":
        rate = params.blades * speed * rng.uniform(0.5, 2.0)
        pops = (rng.random(n) < rate / sr).astype(float) * rng.uniform(0.2, 1.0, n)
        kt = np.arange(int(0.002 * sr)) / sr
        crackle = sps.fftconvolve(pops, np.exp(-kt / 3e-4))[:n]
        fault_sig = _bandpass(crackle + 0.3 * rng.standard_normal(n), rng.uniform(1800, 2500),
                              rng.uniform(6000, 7500), sr)
    else:
        raise ValueError(f"unknown fault family {fault!r}; expected one of "
                         f"{FAULTS + HELD_OUT_FAULTS}")
    return x + level * fault_sig / _rms(fault_sig)


def factory_background(rng: np.random.Generator, n: int, *, plant: np.random.Generator,
                       sr: int = SAMPLE_RATE) -> np.ndarray:
    """Pink noise, the hums of the plant's other machines and random impulsive events;
    unit RMS. ``plant`` draws what every clip of the plant shares (the other machines),
    ``rng`` what changes from clip to clip (levels, events)."""
    t = np.arange(n) / sr
    x = coloured_noise(rng, n, tilt=1.0 + 0.1 * rng.standard_normal(), sr=sr)
    for _ in range(3):                                   # the plant's other machines
        f, level = plant.uniform(60, 700), plant.uniform(0.05, 0.3)
        level *= 10 ** (rng.normal(0, 2) / 20)           # nearer or further, running harder
        x += level * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
        x += 0.4 * level * np.sin(2 * np.pi * 2 * f * t + rng.uniform(0, 2 * np.pi))
    n_events = rng.poisson(0.8 * n / sr / 10)
    for _ in range(n_events):                            # clanks, knocks, a dropped tool
        length = int(rng.uniform(0.05, 0.4) * sr)
        start = int(rng.integers(0, max(1, n - length)))
        tt = np.arange(length) / sr
        burst = rng.standard_normal(length) * np.exp(-tt / rng.uniform(0.01, 0.1))
        burst = _bandpass(burst, rng.uniform(100, 800), rng.uniform(2000, 7000), sr)
        x[start:start + length] += rng.uniform(0.5, 3.0) * burst / _rms(burst)
    return x / _rms(x)


# --- clips and the plant -----------------------------------------------------------------
def make_clip(machine: str, id_number: int, *, abnormal: bool, index: int, seed: int = 0,
              snr_db: float = 6.0, duration: float = 10.0, sr: int = SAMPLE_RATE,
              faults: Sequence[str] = FAULTS, fault_free: bool = False) -> tuple[np.ndarray, dict[str, object]]:
    """One clip as ``(n,) float32`` in [-1, 1), and what was drawn (fault, severity).

    Deterministic in (seed, machine, id, abnormal, index, faults); an abnormal clip draws
    its family from ``faults``. ``fault_free`` gives an abnormal clip's twin without its
    fault: the same machine and background draws, so the two differ by the fault alone
    (``scripts/severity_check.py`` measures how far a fault moves a clip's features).
    """
    params = machine_params(machine, id_number, seed=seed)
    rng = _rng(seed, machine, id_number, "abnormal" if abnormal else "normal", index)
    n = int(round(duration * sr))
    fault, severity = None, 0.0
    if abnormal:
        fault = faults[int(rng.integers(len(faults)))]
        severity = float(rng.uniform(0.0, 1.0))
    before = copy.deepcopy(rng)
    x = machine_sound(params, rng, n=n, sr=sr, fault=fault, severity=severity)
    if fault_free:   # the machine drawn again from the same state; rng goes on to the background
        x = machine_sound(params, before, n=n, sr=sr)
    snr = snr_db + params.snr_offset_db
    bg = factory_background(rng, n, plant=_rng(seed, machine, "plant"), sr=sr)
    mix = x / _rms(x) * 10 ** (snr / 20) + bg
    # A fixed gain, not per-clip normalisation: loudness carries information, as in MIMII.
    mix *= 0.05 / math.sqrt(1.0 + 10 ** (snr / 10))
    return np.clip(mix, -1.0, 32767 / 32768).astype(np.float32), {"fault": fault, "severity": severity}


def _write_clip(out: str, machine: str, id_number: int, label: str, k: int, seed: int,
                snr_db: float, duration: float, faults: tuple[str, ...] = FAULTS) -> dict[str, object]:
    import soundfile as sf

    x, info = make_clip(machine, id_number, abnormal=label == "abnormal", index=k, seed=seed,
                        snr_db=snr_db, duration=duration, faults=faults)
    rel = Path(machine) / f"id_{id_number:02d}" / label / f"{k:08d}.wav"
    path = Path(out) / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), x, SAMPLE_RATE, subtype="PCM_16")
    return {"path": rel.as_posix(), "id": f"id_{id_number:02d}", "label": label, **info}


def write_plant(out: str | os.PathLike, *, machine: str = "fan", ids: Sequence[int] = (0, 2, 4, 6),
                n_normal: int = 100, n_abnormal: int = 30, snr_db: float = 6.0, seed: int = 0,
                duration: float = 10.0, jobs: int = 1, progress: bool = True,
                faults: Sequence[str] = FAULTS) -> list[dict[str, object]]:
    """Write ``out/<machine>/id_XX/{normal,abnormal}/NNNNNNNN.wav`` (16 kHz int16).

    Clips are made in ``jobs`` processes; each depends only on its own seed, so the files
    are the same for any ``jobs``. Returns one record per clip (path, id, label, fault,
    severity), also written to ``out/<machine>/synth.json``.
    """
    import concurrent.futures as cf
    import json
    import multiprocessing

    from tqdm import tqdm

    from edge.errors import EdgeAdError

    # The machine name becomes one folder inside ``out``; a path there would write elsewhere.
    if machine in ("", ".", "..") or "/" in machine or os.sep in machine:
        raise EdgeAdError(f"--machine {machine!r}: expected a plain folder name such as fan")
    out = Path(out)
    faults = tuple(faults)
    unknown = sorted(set(faults) - set(FAULTS + HELD_OUT_FAULTS))
    if not faults or unknown:
        raise EdgeAdError(f"--faults {','.join(faults)}: unknown {unknown or 'none given'}; "
                          f"expected some of {','.join(FAULTS + HELD_OUT_FAULTS)}")
    todo = [(str(out), machine, i, lab, k, seed, snr_db, duration, faults)
            for i in ids for lab, count in (("normal", n_normal), ("abnormal", n_abnormal))
            for k in range(count)]
    bar = tqdm(total=len(todo), desc="synth", unit="clip", disable=not progress)
    records: list[dict[str, object]] = []
    if jobs <= 1:
        for args in todo:
            records.append(_write_clip(*args))
            bar.update()
    else:
        with cf.ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            for rec in pool.map(_write_clip, *zip(*todo), chunksize=8):
                records.append(rec)
                bar.update()
    bar.close()
    meta = {"machine": machine, "ids": list(ids), "snr_db": snr_db, "seed": seed, "faults": list(faults),
            "duration": duration, "clips": records}
    (out / machine / "synth.json").write_text(json.dumps(meta, indent=1) + "\n")
    return records


def copy_as_dcase(mimii_machine: str | os.PathLike, out: str | os.PathLike, *,
                  test_normals: int = 4) -> Path:
    """Copy a MIMII-layout machine folder (``id_XX/{normal,abnormal}/*.wav``) into the DCASE
    2020 layout at ``out``: ``train/normal_id_XX_NNNNNNNN.wav`` and ``test/{normal,anomaly}
    _id_XX_NNNNNNNN.wav``, the last ``test_normals`` normal clips of each ID in test. For
    plants that mix layouts (``edge-ad fleet``). Returns ``out``."""
    import shutil

    src, out = Path(mimii_machine), Path(out)
    (out / "train").mkdir(parents=True, exist_ok=True)
    (out / "test").mkdir(exist_ok=True)
    for id_dir in sorted(src.glob("id_*")):
        ident = id_dir.name[len("id_"):]
        normals = sorted((id_dir / "normal").glob("*.wav"))
        for i, f in enumerate(normals):
            split = "test" if i >= len(normals) - test_normals else "train"
            shutil.copy2(f, out / split / f"normal_id_{ident}_{i:08d}.wav")
        for i, f in enumerate(sorted((id_dir / "abnormal").glob("*.wav"))):
            shutil.copy2(f, out / "test" / f"anomaly_id_{ident}_{i:08d}.wav")
    return out
