"""The C kernel as C: built with AddressSanitizer + UndefinedBehaviorSanitizer, fuzzed with
libFuzzer, and cross-compiled for Pi-class ARM (Cortex-A72 aarch64, Cortex-A7 armhf NEON)
and run under qemu-user. Builds go through scripts/check-c.sh; golden inputs are written
here from edge.tables at test time and every output is held to the numpy reference (and
the ARM outputs to the x86 ones).

In CI (CI=true) a missing compiler or qemu fails these tests instead of skipping them.
"""
from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from edge import reference, tables
from edge.spec import DEFAULT_SPEC
from ci_env import in_ci

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "check-c.sh"
DATA = Path(__file__).parent / "data" / "mimii-valve"
TOL = 1e-3
SR = 16000
TOOLS = {
    "native": ["gcc"],
    "asan": ["clang"],
    "aarch64": ["aarch64-linux-gnu-gcc", "qemu-aarch64"],
    "aarch64-a76": ["aarch64-linux-gnu-gcc", "qemu-aarch64"],
    "armhf": ["arm-linux-gnueabihf-gcc", "qemu-arm"],
}


def _require(tools: list[str]) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        message = f"missing {', '.join(missing)} (scripts/setup.sh installs them)"
        if in_ci():
            pytest.fail("CI: " + message)
        pytest.skip(message)


def _cases() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    t = np.arange(3 * SR) / SR
    x, _ = sf.read(DATA / "normal_00000000_2s.wav", dtype="int16")
    return {
        "noise": (0.1 * rng.standard_normal(3 * SR)).astype(np.float32),
        "clipped_tones": np.clip(2.0 * np.sin(2 * np.pi * 440 * t) + np.sin(2 * np.pi * 5000 * t),
                                 -1, 1).astype(np.float32),
        "silence": np.zeros(SR, np.float32),
        "short": rng.uniform(-1, 1, 300).astype(np.float32),
        "one_frame": rng.uniform(-1, 1, 1024).astype(np.float32),
        "mimii": (x[:, 0] / 32768.0).astype(np.float32),
    }


CASES = _cases()


def _write_config(path: Path) -> None:
    """The binary configuration golden_driver.c reads (layout documented there)."""
    spec = DEFAULT_SPEC
    mel = tables.mel_sparse(spec)
    with open(path, "wb") as f:
        f.write(np.array([spec.hop_length], "<i4").tobytes())
        f.write(np.array([spec.log_floor], "<f4").tobytes())
        f.write(np.array([len(mel.weights)], "<i4").tobytes())
        f.write(tables.window(spec).astype("<f4").tobytes())
        for a in (mel.starts, mel.lengths, mel.offsets):
            f.write(a.astype("<i4").tobytes())
        f.write(mel.weights.astype("<f4").tobytes())


def _build(kind: str, out: Path) -> Path:
    _require(TOOLS[kind])
    done = subprocess.run([str(SCRIPT), "build", kind, str(out)], capture_output=True, text=True)
    assert done.returncode == 0, f"check-c.sh build {kind} failed:\n{done.stderr}"
    return Path(done.stdout.strip().splitlines()[-1])


def _run_cases(kind: str, program: Path, work: Path) -> dict[str, dict[str, np.ndarray]]:
    """Run golden_driver on every case; returns {case: {output name: array}}."""
    runner = subprocess.run([str(SCRIPT), "runner", kind], capture_output=True, text=True,
                            check=True).stdout.split()
    config = work / "config.bin"
    _write_config(config)
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=1",
               UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1")
    results = {}
    for name, x in CASES.items():
        case = work / f"{kind}-{name}"
        case.mkdir()
        x.astype("<f4").tofile(case / "input.f32")
        done = subprocess.run(runner + [str(program), str(config), str(case / "input.f32"),
                                        str(case)], capture_output=True, text=True, env=env,
                              timeout=120)
        command = shlex.join(runner + [str(program)])
        assert done.returncode == 0, f"{command} on {name}: rc {done.returncode}\n{done.stderr}"
        assert "runtime error" not in done.stderr and "Sanitizer" not in done.stderr, done.stderr
        assert "golden_driver: ok" in done.stdout
        results[name] = {p.stem: np.fromfile(p, "<f4") for p in case.glob("*.f32")
                         if p.name != "input.f32"}
        # the streaming detector path's errors (ad_stream on a seeded int8 network)
        results[name]["stream_err"] = np.fromfile(case / "stream_err.f64", "<f8")
    return results


def _check_against_reference(name: str, out: dict[str, np.ndarray]) -> None:
    x = CASES[name]
    frames = reference.logmel_frames(x)
    assert np.abs(out["frames"].reshape(frames.shape) - frames).max() <= TOL
    vectors = reference.context_vectors(frames)
    assert np.abs(out["vectors"].reshape(vectors.shape) - vectors).max(initial=0) <= TOL
    stream = reference.context_vectors(reference.logmel_frames_unpadded(x))
    assert np.abs(out["stream"].reshape(stream.shape) - stream).max(initial=0) <= TOL
    pcm = np.clip(np.round(x.astype(np.float64) * 32768), -32768, 32767) / 32768
    stream16 = reference.context_vectors(reference.logmel_frames_unpadded(pcm))
    assert np.abs(out["stream_i16"].reshape(stream16.shape) - stream16).max(initial=0) <= TOL
    frame = np.zeros(1024)
    frame[:min(len(x), 1024)] = x[:1024]
    want = np.fft.rfft(frame)
    got = out["fft"][:513] + 1j * out["fft"][513:].astype(np.float64)
    noise = max(np.sum(np.abs(got - want) ** 2), 1e-300)
    assert 10 * np.log10(max(np.sum(np.abs(want) ** 2), 1e-300) / noise) >= 100 or \
        np.abs(want).max() == 0


@pytest.fixture(scope="module")
def native_outputs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    work = tmp_path_factory.mktemp("native")
    return _run_cases("native", _build("native", work / "build"), work)


def test_native_golden_driver_matches_reference(native_outputs: dict) -> None:
    for name, out in native_outputs.items():
        _check_against_reference(name, out)


def test_kernel_under_address_and_undefined_sanitizers_runs_clean(tmp_path: Path) -> None:
    outputs = _run_cases("asan", _build("asan", tmp_path / "build"), tmp_path)
    for name, out in outputs.items():
        _check_against_reference(name, out)


@pytest.mark.parametrize("kind", ["aarch64", "armhf"])
def test_cross_compiled_kernel_under_qemu_matches_x86(kind: str, tmp_path: Path,
                                                      native_outputs: dict) -> None:
    program = _build(kind, tmp_path / "build")
    head = program.read_bytes()[:20]
    # ELF e_machine: 183 = AArch64, 40 = ARM (32-bit); so qemu really ran ARM code
    assert head[:4] == b"\x7fELF"
    assert int.from_bytes(head[18:20], "little") == (183 if kind == "aarch64" else 40)
    outputs = _run_cases(kind, program, tmp_path)
    for name, out in outputs.items():
        for key, value in out.items():
            assert value.shape == native_outputs[name][key].shape, (name, key)
            assert np.abs(value - native_outputs[name][key]).max(initial=0) <= TOL, (name, key)
            # stronger than the contract: no FMA contraction and fixed summation orders
            # (csrc/ad_hot.h, build flags) make the board compute the training machine's bits
            assert np.array_equal(value, native_outputs[name][key]), (name, key)
        _check_against_reference(name, out)


def run_libfuzzer(tmp_path: Path, target: str, *, min_runs: int) -> None:
    """``check-c.sh fuzz`` on ``target`` for EDGE_AD_FUZZ_SECONDS (25): no finding, no
    crash or leak file, and at least ``min_runs`` inputs tried."""
    _require(["clang"])
    seconds = int(os.environ.get("EDGE_AD_FUZZ_SECONDS", "25"))
    done = subprocess.run([str(SCRIPT), "fuzz", str(tmp_path), str(seconds), target],
                          capture_output=True, text=True, timeout=seconds + 120)
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-4000:]
    assert not list(tmp_path.glob("crash-*")) and not list(tmp_path.glob("leak-*")), log[-4000:]
    runs = [int(line.split()[1]) for line in log.splitlines() if line.startswith("Done ")]
    assert runs and runs[0] > min_runs, log[-2000:]


@pytest.mark.slow
def test_libfuzzer_run_on_random_lengths_chunks_and_samples_finds_nothing(tmp_path: Path) -> None:
    run_libfuzzer(tmp_path, "frontend", min_runs=1000)
