"""train.synth: deterministic, MIMII layout, and the physics it claims."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest
import soundfile as sf

from edge.cli import main
from train import synth
from train.datasets import read_dataset


def _digests(root):
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*.wav"))}


def test_same_seed_gives_identical_files_and_another_seed_differs(tmp_path):
    kw = dict(ids=(1, 3), n_normal=2, n_abnormal=2, duration=1.0, progress=False)
    synth.write_plant(tmp_path / "a", seed=5, **kw)
    synth.write_plant(tmp_path / "b", seed=5, jobs=2, **kw)   # processes do not change the files
    synth.write_plant(tmp_path / "c", seed=6, **kw)
    a, b, c = (_digests(tmp_path / n) for n in "abc")
    assert a == b and len(a) == 8
    assert all(a[k] != c[k] for k in a)


def test_plant_is_mimii_layout_16k_int16_and_reads_back(tmp_path):
    records = synth.write_plant(tmp_path, machine="pump", ids=(0, 2), n_normal=8, n_abnormal=2,
                                duration=2.0, progress=False)
    info = sf.info(str(tmp_path / "pump" / "id_02" / "abnormal" / "00000001.wav"))
    assert (info.samplerate, info.channels, info.subtype, info.frames) == (16000, 1, "PCM_16", 32000)
    clips = read_dataset(tmp_path)
    assert len(clips) == len(records) == 20
    assert {c.id for c in clips} == {"id_00", "id_02"} and {c.machine for c in clips} == {"pump"}
    faults = {r["fault"] for r in records if r["label"] == "abnormal"}
    assert faults <= set(synth.FAULTS) and all(r["fault"] is None for r in records if r["label"] == "normal")


def test_ids_differ_in_mechanics():
    params = [synth.machine_params("fan", i) for i in (0, 2, 4, 6)]
    assert len({(p.shaft_hz, p.blades) for p in params}) == 4
    assert len({round(p.speed_spread, 6) for p in params}) == 4


def _band_power(x, lo, hi, sr=16000):
    f = np.fft.rfftfreq(len(x), 1 / sr)
    p = np.abs(np.fft.rfft(x)) ** 2
    return p[(f >= lo) & (f < hi)].sum() / p.sum()


def test_machine_sound_peaks_at_blade_pass_frequency():
    params = synth.machine_params("fan", 2)
    x = synth.machine_sound(params, np.random.default_rng(0), n=160000)
    f = np.fft.rfftfreq(len(x), 1 / 16000)
    p = np.abs(np.fft.rfft(x)) ** 2
    bpf = params.blades * params.shaft_hz
    width = bpf * 5 * params.speed_spread + 2
    near = p[(f > bpf - width) & (f < bpf + width)].max()
    elsewhere = np.median(p[(f > 20) & (f < 8000)])
    assert near > 1000 * elsewhere


@pytest.mark.parametrize("fault, band", [("bearing", (2500, 7000)), ("rubbing", (1500, 6000))])
def test_faults_add_energy_where_they_should(fault, band):
    params = synth.machine_params("fan", 0)
    n = 160000
    clean = synth.machine_sound(params, np.random.default_rng(1), n=n)
    faulty = synth.machine_sound(params, np.random.default_rng(1), n=n, fault=fault, severity=1.0)
    assert _band_power(faulty, *band) > 1.5 * _band_power(clean, *band)


def test_imbalance_strengthens_the_shaft_tone():
    params = synth.machine_params("fan", 4)
    n = 160000
    lo, hi = 0.8 * params.shaft_hz, 1.2 * params.shaft_hz
    clean = synth.machine_sound(params, np.random.default_rng(2), n=n)
    faulty = synth.machine_sound(params, np.random.default_rng(2), n=n, fault="imbalance", severity=1.0)
    assert _band_power(faulty, lo, hi) > 2 * _band_power(clean, lo, hi)


def test_synth_cli_writes_and_refuses_a_non_empty_folder(tmp_path, capsys):
    out = tmp_path / "plant"
    assert main(["-q", "synth", str(out), "--ids", "1", "--normal", "1", "--abnormal", "1",
                 "--duration", "0.5"]) == 0
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.wav")) == [
        "fan/id_01/abnormal/00000000.wav", "fan/id_01/normal/00000000.wav"]
    before = _digests(out)
    assert main(["-q", "synth", str(out), "--ids", "1"]) == 2
    assert "not empty" in capsys.readouterr().err
    assert _digests(out) == before   # the earlier plant is untouched


@pytest.mark.parametrize("fault", ["tone", "bearing", "cavitation"])
def test_fault_free_twin_differs_from_its_clip_by_the_drawn_fault_level(fault):
    # An additive fault adds level * (unit-RMS signal) to the unit-RMS machine sound, which
    # is mixed at the ID's SNR under the background and scaled by a fixed gain. With the
    # same machine and background draws, the clip minus its twin is that fault signal at
    # that level (to first order in the level), which SPEC-free arithmetic predicts from
    # machine_params alone.
    params = synth.machine_params("slider", 0, seed=14)
    kw = dict(abnormal=True, index=3, seed=14, snr_db=-3.0, duration=2.0, faults=(fault,))
    x, info = synth.make_clip("slider", 0, **kw)
    twin, twin_info = synth.make_clip("slider", 0, fault_free=True, **kw)
    assert twin_info == info and info["fault"] == fault
    snr = -3.0 + params.snr_offset_db
    machine_rms = 10 ** (snr / 20) * 0.05 / np.sqrt(1 + 10 ** (snr / 10))
    lo, hi = params.fault_db
    level_db = lo + info["severity"] * (hi - lo)
    measured_db = 20 * np.log10(np.sqrt(np.mean((x.astype(np.float64) - twin) ** 2)) / machine_rms)
    assert abs(measured_db - level_db) < 0.5, (measured_db, level_db)


def test_fault_free_leaves_a_normal_clip_as_it_is():
    kw = dict(abnormal=False, index=5, seed=3, duration=1.0)
    assert np.array_equal(synth.make_clip("pump", 2, **kw)[0], synth.make_clip("pump", 2, fault_free=True, **kw)[0])
