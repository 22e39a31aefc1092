"""The C int8 dense network (csrc/ad_dense.c) against TensorFlow Lite's own reference
kernels: the network is read out of int8 TFLite models the converter writes, and every
kernel this machine has (scalar, AVX2, AVX-VNNI, AVX-512 VNNI, AMX) must give LiteRT's int8
outputs bit for bit (``OpResolverType.BUILTIN_REF``), on random vectors and on real MIMII
clips; the gemmlowp (double rounding) form must give tflite-runtime 2.14's.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from edge import audio, dense
from edge.backends.c import CBackend, available_kernels, new_network
from edge.errors import BackendError, BundleError, EdgeAdError
from edge.features import clip_features
from edge.scoring import vector_errors
from train.export import tflite as tflite_export
from train.export.dense import from_tflite, quantize_multiplier
from train.export.fold import fold_batchnorm
from train.model import Autoencoder, ModelConfig

from runtime_support import REPO, tflite214_python
from ci_env import in_ci

pytestmark = pytest.mark.slow   # two TFLite conversions, ~10 s
DATA = Path(__file__).parent / "data" / "mimii-valve"
KERNELS = available_kernels()


def _autoencoder() -> Autoencoder:
    """The seed's architecture with random weights and BatchNorm statistics (folded into
    the Linear layers by export): activations of every sign and scale."""
    torch.manual_seed(3)
    model = Autoencoder(ModelConfig())
    g = torch.Generator().manual_seed(4)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.3)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
    return model.eval()


def _logmel_like(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (-4 + 1.5 * np.sin(np.arange(640) / 30) + rng.standard_normal((n, 640))).astype(np.float32)


@pytest.fixture(scope="module")
def tflite_models(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("dense")
    layers = fold_batchnorm(_autoencoder())
    calibration = _logmel_like(400, 0)
    paths = {"float_io": out / "float_io.tflite", "int8_io": out / "int8_io.tflite"}
    paths["float_io"].write_bytes(tflite_export.convert_int8(layers, calibration, float_io=True))
    paths["int8_io"].write_bytes(tflite_export.convert_int8(layers, calibration, float_io=False))
    return paths


@pytest.fixture(scope="module")
def inputs() -> np.ndarray:
    """Random vectors (some beyond the calibrated range, so inputs saturate) and the
    context vectors of both real MIMII clips."""
    clips = [clip_features(audio.load(p)) for p in sorted(DATA.glob("*.wav"))]
    return np.concatenate([_logmel_like(100, 1), 3 * _logmel_like(20, 2), *clips])


def _c_model(tflite: Path, tmp: Path, *, single_rounding: bool = True) -> Path:
    path = tmp / f"{tflite.stem}-{int(single_rounding)}.adq8"
    path.write_bytes(from_tflite(tflite.read_bytes(), single_rounding=single_rounding).to_bytes())
    return path


def _litert(path: Path, x: np.ndarray, *, preserve: bool = False):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    it = Interpreter(model_path=str(path), num_threads=1,
                     experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
                     experimental_preserve_all_tensors=preserve)
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    it.resize_tensor_input(inp["index"], x.shape)
    it.allocate_tensors()
    it.set_tensor(inp["index"], x)
    it.invoke()
    return it, it.get_tensor(out["index"])


def test_the_c_kernels_include_scalar_and_the_cpus_simd_one():
    assert "scalar" in KERNELS
    if os.uname().machine == "x86_64":
        assert "avx2" in KERNELS    # every x86-64 CI machine of this project has AVX2


@pytest.mark.parametrize("kernel", KERNELS)
def test_float_io_model_outputs_equal_litert_reference_kernels_bit_for_bit(
        kernel, tflite_models, inputs, tmp_path):
    """QUANTIZE -> FULLY_CONNECTED x 6 -> DEQUANTIZE in LiteRT against the C kernel's float
    path: the same float32 outputs, bit for bit."""
    _, want = _litert(tflite_models["float_io"], inputs)
    c = CBackend(_c_model(tflite_models["float_io"], tmp_path), kernel=kernel)
    assert c.kernel == kernel
    got = c.run(inputs)
    assert got.dtype == np.float32 and got.shape == want.shape
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))


@pytest.mark.parametrize("kernel", KERNELS)
def test_int8_io_model_outputs_equal_litert_reference_kernels_bit_for_bit(
        kernel, tflite_models, inputs, tmp_path):
    """int8 in, int8 out: the inputs LiteRT's own QUANTIZE op makes (read from the float-IO
    model's tensors) through both networks; the C quantisation equals that op too."""
    it, _ = _litert(tflite_models["float_io"], inputs, preserve=True)
    quantize_out = next(t["index"] for t in it.get_tensor_details() if t["name"] == "tfl.quantize")
    q = it.get_tensor(quantize_out)
    c = CBackend(_c_model(tflite_models["int8_io"], tmp_path), kernel=kernel)
    _, want = _litert(tflite_models["int8_io"], q)
    assert want.dtype == np.int8
    assert np.array_equal(c.run_int8(q), want)
    assert np.array_equal(c.run_quantized(inputs), want)   # C's QUANTIZE = LiteRT's


def test_a_bundles_layers_run_one_at_a_time_give_litert_int8_outputs(tflite_models, inputs, tmp_path):
    """``CBackend(path, net=...)`` runs a network given in memory (scripts/int8_sparsity.py
    runs a bundle's layers one by one): chained, the layers give LiteRT's int8 outputs."""
    import dataclasses

    path = _c_model(tflite_models["int8_io"], tmp_path)
    net = dense.read(path)
    it, _ = _litert(tflite_models["float_io"], inputs, preserve=True)
    q = it.get_tensor(next(t["index"] for t in it.get_tensor_details() if t["name"] == "tfl.quantize"))
    _, want = _litert(tflite_models["int8_io"], q)
    for layer in net.layers:
        one = CBackend(path, net=dataclasses.replace(net, layers=(layer,)))
        assert (one.width, one.n_out) == (layer.n_in, layer.n_out)
        q = one.run_int8(q)
    assert np.array_equal(q, want)


def test_double_rounding_form_equals_tflite_runtime_2_14_and_differs_from_litert(
        tflite_models, inputs, tmp_path):
    """tflite-runtime 2.14 requantises with gemmlowp's two roundings, the ai-edge-litert
    wheels with TFLITE_SINGLE_ROUNDING: the C kernel reproduces each in its form."""
    python = tflite214_python()
    if python is None:
        if in_ci():
            pytest.fail("no tflite-runtime 2.14 venv: run scripts/setup-tflite214.sh")
        pytest.skip("no tflite-runtime 2.14 venv (scripts/setup-tflite214.sh makes it)")
    np.save(tmp_path / "x.npy", inputs)
    code = (
        "import numpy as np\n"
        "from tflite_runtime.interpreter import Interpreter, OpResolverType\n"
        f"x = np.load({str(tmp_path / 'x.npy')!r})\n"
        f"it = Interpreter(model_path={str(tflite_models['float_io'])!r}, num_threads=1, "
        "experimental_op_resolver_type=OpResolverType.BUILTIN_REF)\n"
        "i, o = it.get_input_details()[0], it.get_output_details()[0]\n"
        "it.resize_tensor_input(i['index'], x.shape); it.allocate_tensors()\n"
        "it.set_tensor(i['index'], x); it.invoke()\n"
        f"np.save({str(tmp_path / 'y.npy')!r}, it.get_tensor(o['index']))\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONHOME", "VIRTUAL_ENV")}
    subprocess.run([str(python), "-c", code], check=True, cwd=REPO, env=env)
    old = np.load(tmp_path / "y.npy")
    double = _c_model(tflite_models["float_io"], tmp_path, single_rounding=False)
    for kernel in KERNELS:
        assert np.array_equal(CBackend(double, kernel=kernel).run(inputs).view(np.uint32),
                              old.view(np.uint32))
    single = CBackend(_c_model(tflite_models["float_io"], tmp_path)).run(inputs)
    assert not np.array_equal(single, old)   # the two forms do differ on these inputs


@pytest.mark.parametrize("kernel", KERNELS)
def test_errors_are_the_squared_distance_of_the_dequantised_output_to_the_float_input(
        kernel, tflite_models, inputs, tmp_path):
    c = CBackend(_c_model(tflite_models["float_io"], tmp_path), kernel=kernel)
    _, recon = _litert(tflite_models["float_io"], inputs)
    want = vector_errors(inputs, recon)        # numpy, float64, against the float input
    got = c.errors(inputs)
    assert got.dtype == np.float64 and got.shape == (len(inputs),)
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_all_kernels_agree_bit_for_bit_on_every_batch_size(tflite_models, inputs, tmp_path):
    """Batches of 1..AD_DENSE_BATCH+1 vectors take every specialised kernel body."""
    from edge.backends.c import _lib
    path = _c_model(tflite_models["float_io"], tmp_path)
    ref = CBackend(path, kernel="scalar").errors(inputs)
    for kernel in KERNELS:
        c = CBackend(path, kernel=kernel)
        for n in range(1, _lib()[1].AD_DENSE_BATCH + 2):
            assert np.array_equal(c.errors(inputs[:n]), ref[:n]), (kernel, n)


def _tflite_fc_reference(net: dense.DenseNet, q: np.ndarray) -> np.ndarray:
    """TFLite's reference int8 FullyConnected chain in numpy int64, written from its
    definition (gemmlowp's SaturatingRoundingDoublingHighMul and RoundingDivideByPOT, or
    TFLITE_SINGLE_ROUNDING's one rounding), independent of the C code."""
    x = q.astype(np.int64)
    for l in net.layers:
        acc = (x - l.input_zero_point) @ l.weights.astype(np.int64).T + l.bias.astype(np.int64)
        m, s = l.multiplier.astype(np.int64), l.shift.astype(np.int64)
        if net.single_rounding:
            t = 31 - s
            y = (acc * m + (np.int64(1) << (t - 1))) >> t
        else:
            left, right = np.maximum(s, 0), np.maximum(-s, 0)
            v = acc << left
            ab = v * m
            nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
            num = ab + nudge
            high = np.where(num >= 0, num >> 31, -((-num) >> 31))      # toward zero
            mask = (np.int64(1) << right) - 1
            threshold = (mask >> 1) + (high < 0)
            y = (high >> right) + ((high & mask) > threshold)
        lo = l.output_zero_point if l.relu else -128
        x = np.clip(y + l.output_zero_point, max(lo, -128), 127)
    return x.astype(np.int8)


def _random_net(rng: np.random.Generator, widths: list[int], single: bool) -> dense.DenseNet:
    """Random int8 layers as a converter could write them: symmetric weights, biases,
    multipliers in [2^30, 2^31) (some 0), right and small left shifts."""
    layers, zp = [], int(rng.integers(-128, 128))
    for n_in, n_out in zip(widths[:-1], widths[1:]):
        out_zp = int(rng.integers(-128, 128))
        mult = rng.integers(1 << 30, 1 << 31, n_out, dtype=np.int64)
        mult[rng.random(n_out) < 0.05] = 0
        # every shift right in some layers (the high-half requantisation), a few at 0 or
        # left in others
        shift = -rng.integers(1, 20, n_out) if rng.random() < 0.5 else rng.integers(-20, 3, n_out)
        layers.append(dense.DenseLayer(
            weights=rng.integers(-127, 128, (n_out, n_in)).astype(np.int8),
            bias=rng.integers(-20000, 20000, n_out).astype(np.int32),
            multiplier=mult.astype(np.int32), shift=shift.astype(np.int32),
            weight_scale=np.ones(n_out, np.float32), input_zero_point=zp,
            output_zero_point=out_zp, relu=bool(rng.random() < 0.5)))
        zp = out_zp
    return dense.DenseNet(layers=tuple(layers), single_rounding=single, input_scale=0.1,
                          input_zero_point=layers[0].input_zero_point, output_scale=0.1,
                          output_zero_point=layers[-1].output_zero_point)


@pytest.mark.parametrize("kernel", KERNELS)
def test_every_kernel_is_tflites_reference_arithmetic_on_random_shapes(kernel, tmp_path):
    """Random networks of odd widths (so the padded widths are 16, 32, 48, 80, 112, 144 and
    the AMX K step 16, 32 or 64), both rounding forms, shifts that do and do not allow the
    high-half requantisation, in calls of 1 to 40 vectors (AMX: one and two input tiles;
    more than AD_DENSE_BATCH), against the numpy transcription of TFLite's reference."""
    from edge.backends.c import _lib
    ffi, lib = _lib()
    rng = np.random.default_rng(21)
    for trial in range(24):
        widths = [int(w) for w in rng.choice([5, 8, 16, 17, 33, 40, 64, 80, 100, 130], 4)]
        net = _random_net(rng, widths, single=bool(trial % 2))
        c = CBackend(tmp_path / "random.adq8", kernel=kernel, net=net)
        q = rng.integers(-128, 128, (40, widths[0])).astype(np.int8)
        want = _tflite_fc_reference(net, q)
        for n in (1, 2, 3, 5, 15, 16, 17, 31, 32, 33, 40):
            got = np.empty((n, widths[-1]), np.int8)
            c._check(lib.ad_dense_run_i8(c._state, ffi.from_buffer("int8_t[]", q[:n]), n,
                                         ffi.from_buffer("int8_t[]", got)))
            assert np.array_equal(got, want[:n]), (kernel, trial, widths, n)


def _quantize_reference(x: np.ndarray, scale: np.float32, zero_point: int) -> np.ndarray:
    """TFLite's QUANTIZE: x / scale rounded in float32 (numpy divides exactly rounded),
    then half away from zero in float64 (exact for float32 values), + zero point, clamped."""
    with np.errstate(all="ignore"):
        v = (x / scale).astype(np.float64)
        r = np.sign(v) * np.floor(np.abs(v) + 0.5) + zero_point
        r = np.where(np.isnan(v), 127, r)
    return np.clip(np.nan_to_num(r, posinf=127, neginf=-128), -128, 127).astype(np.int8)


def test_quantize_gives_the_division_bits_at_and_near_every_tie():
    """ad_quantize_f32 (which on AVX-512 multiplies by the reciprocal and falls back to the
    division near a tie) against the float32 division rounded in numpy: exact ties
    (k + 1/2) * scale, their float neighbours, random values, the clamp edges, NaN, inf,
    subnormals and zeros, for many scales and zero points, in lengths that leave tails."""
    from edge.backends.c import _lib
    ffi, lib = _lib()
    rng = np.random.default_rng(11)
    scales = [np.float32(s) for s in (0.1, 0.03125, 1.0, 3.0, 1e-3, 7.3e-5, 0.0234, 12.5)]
    scales += list(rng.uniform(1e-4, 2.0, 24).astype(np.float32))
    checked = 0
    for scale in scales:
        for zero_point in (-128, -5, 0, 37, 127):
            k = rng.integers(-300, 300, 2000).astype(np.float32) + np.float32(0.5)
            ties = (k * scale).astype(np.float32)
            near = np.concatenate([np.nextafter(ties, np.float32(np.inf)),
                                   np.nextafter(ties, np.float32(-np.inf)), ties])
            special = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-45, -1e-45, 3e38,
                                -3e38, (127 - zero_point) * scale, (-128 - zero_point) * scale],
                               np.float32)
            x = np.concatenate([near, special, (rng.normal(0, 100, 3000) * scale).astype(np.float32)])
            x = np.ascontiguousarray(rng.permutation(x)[: len(x) - 7])  # not a multiple of 16
            got = np.empty(len(x), np.int8)
            lib.ad_quantize_f32(ffi.from_buffer("float[]", x), len(x), float(scale), zero_point,
                                ffi.from_buffer("int8_t[]", got))
            want = _quantize_reference(x, scale, zero_point)
            bad = np.flatnonzero(got != want)
            assert not len(bad), (scale, zero_point, x[bad[:3]], got[bad[:3]], want[bad[:3]])
            checked += len(x)
    assert checked > 1_000_000


def test_quantize_multiplier_is_tflites():
    """QuantizeMultiplier's documented cases: m * 2^(s - 31) within half a unit of the
    multiplier, the rounding carry at the top and the clamps."""
    for real in (0.000731, 0.25, 0.5, 0.9999999, 1.5, 3e-10, 7.0):
        m, s = quantize_multiplier(real)
        assert 1 << 30 <= m < 1 << 31
        assert abs(m * 2.0 ** (s - 31) - real) <= 2.0 ** (s - 32)
    assert quantize_multiplier(0.0) == (0, 0)
    assert quantize_multiplier(1 - 2 ** -40) == (1 << 30, 1)   # rounds up to 2^31: carry
    assert quantize_multiplier(2.0 ** -40) == (0, 0)           # shift below -31: zero
    assert quantize_multiplier(2.0 ** 40) == ((1 << 31) - 1, 30)


def _net(tflite_models) -> dense.DenseNet:
    return from_tflite(tflite_models["float_io"].read_bytes())


def test_the_file_format_round_trips_and_documents_the_macs(tflite_models):
    net = _net(tflite_models)
    again = dense.from_bytes(net.to_bytes())
    assert again.macs == 640 * 128 + 128 * 128 + 128 * 8 + 8 * 128 + 128 * 128 + 128 * 640
    assert again.to_bytes() == net.to_bytes()
    assert [l.relu for l in again.layers] == [True] * 5 + [False]


def test_damaged_files_are_refused_naming_the_file(tflite_models, tmp_path):
    data = _net(tflite_models).to_bytes()
    cases = {"short": data[:20], "magic": b"X" + data[1:], "cut": data[:-17],
             "version": data[:8] + (7).to_bytes(4, "little") + data[12:]}
    for name, blob in cases.items():
        p = tmp_path / f"{name}.adq8"
        p.write_bytes(blob)
        with pytest.raises(BundleError, match=str(p)):
            CBackend(p)


def test_c_init_refuses_values_outside_tflites_int8_ranges(tflite_models):
    net = _net(tflite_models)
    first = net.layers[0]

    def with_first(**change) -> dense.DenseNet:
        import dataclasses
        return dataclasses.replace(net, layers=(dataclasses.replace(first, **change),
                                                *net.layers[1:]))

    w = first.weights.copy()
    w[3, 5] = -128
    bad = {"a weight of -128": with_first(weights=w),
           "a multiplier below 2^30": with_first(multiplier=first.multiplier // 4 + 1),
           "a shift of 31": with_first(shift=np.full_like(first.shift, 31)),
           "zero points that do not chain": with_first(output_zero_point=first.output_zero_point + 1),
           "a bias that overflows int32": with_first(bias=np.full_like(first.bias, 2**31 - 10))}
    for what, n in bad.items():
        with pytest.raises(BackendError, match="the C int8 kernel refuses it"):
            new_network(n)
    with pytest.raises(BackendError, match="not built in or not on this CPU"):
        new_network(net, kernel="neon" if "neon" not in KERNELS else "avx2")


def test_a_float_model_is_refused_by_the_reader(tmp_path):
    layers = fold_batchnorm(_autoencoder())
    with pytest.raises(EdgeAdError, match="float.tflite: .*FULLY_CONNECTED x N"):
        from_tflite(tflite_export.convert_float(layers), source="float.tflite")


# --- the C build itself: sanitizers, ARM boards under qemu-user, libFuzzer ---------------
BUILDS = ["native", "asan", "aarch64", "aarch64-a76", "armhf"]
ELF_MACHINE = {"native": 62, "asan": 62, "aarch64": 183, "aarch64-a76": 183, "armhf": 40}


@pytest.fixture(scope="module")
def driver_inputs(tflite_models, inputs, tmp_path_factory) -> dict[str, Path]:
    """Both rounding forms of the network, and the vectors as float32."""
    tmp = tmp_path_factory.mktemp("dense-driver")
    inputs.astype("<f4").tofile(tmp / "x.f32")
    return {"x": tmp / "x.f32",
            "single": _c_model(tflite_models["float_io"], tmp),
            "double": _c_model(tflite_models["float_io"], tmp, single_rounding=False)}


@pytest.mark.parametrize("kind", BUILDS)
def test_dense_driver_gives_litert_reference_bits_on_every_build(
        kind, driver_inputs, tflite_models, inputs, tmp_path):
    """dense_driver checks every kernel of its build against the scalar one, in calls of
    1..AD_DENSE_BATCH+1 vectors, and init's refusals; its scalar outputs must be LiteRT's
    reference outputs on x86, under ASan+UBSan, and on Cortex-A72 (NEON), Cortex-A76
    (NEON dot product) and Cortex-A7 (armhf NEON) under qemu-user."""
    from test_frontend_c import SCRIPT, TOOLS, _require

    _require(TOOLS[kind])
    done = subprocess.run([str(SCRIPT), "build", kind, str(tmp_path / "build")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    program = tmp_path / "build" / "dense_driver"
    assert int.from_bytes(program.read_bytes()[18:20], "little") == ELF_MACHINE[kind]
    runner = subprocess.run([str(SCRIPT), "runner", kind], capture_output=True, text=True,
                            check=True).stdout.split()
    _, want_single = _litert(tflite_models["float_io"], inputs)
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=1",
               UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1")
    for form in ("single", "double"):
        out = tmp_path / form
        out.mkdir()
        r = subprocess.run([*runner, str(program), str(driver_inputs[form]),
                            str(driver_inputs["x"]), str(out)],
                           capture_output=True, text=True, env=env, timeout=300)
        assert r.returncode == 0 and "dense_driver: ok" in r.stdout, r.stderr
        assert "runtime error" not in r.stderr and "Sanitizer" not in r.stderr
        if kind.startswith("aarch64") or kind == "armhf":
            assert "neon" in r.stdout
        recon = np.fromfile(out / "recon.f32", "<f4").reshape(inputs.shape)
        errors = np.fromfile(out / "err.f64", "<f8")
        want_errors = CBackend(driver_inputs[form], kernel="scalar").errors(inputs)
        assert np.array_equal(errors, want_errors)   # the same bits as this machine's
        if form == "single":
            assert np.array_equal(recon.view(np.uint32), want_single.view(np.uint32))
        else:
            assert np.array_equal(recon, CBackend(driver_inputs[form]).run(inputs))


def test_libfuzzer_on_random_networks_and_inputs_finds_nothing(tmp_path):
    from test_frontend_c import run_libfuzzer

    run_libfuzzer(tmp_path, "dense", min_runs=1000)
