"""``edge-ad bench``: float against int8 in accuracy and latency, measured in one run.

Everything is measured on the same clips, on the same machine, in the same process, one
thread each, after warm-up, so the ratios printed next to the absolute figures compare like
with like. Speed targets live here (and in ``bench/``), never in the tests.
"""
from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edge import features
from edge.errors import EdgeAdError
from edge.scoring import clip_score
from edge.spec import DEFAULT_SPEC, FeatureSpec

from . import metrics

Runner = Callable[[np.ndarray], np.ndarray]

#: the variants in the order the table shows them; the first present is the reference
VARIANTS = ("torch float", "onnx float", "onnx int8", "tflite float", "tflite int8", "c int8")
#: vectors of one decision call of ``edge-ad run`` (1 s of audio, 512-sample hops)


# --------------------------------------------------------------------------- utilities
def single_thread() -> None:
    """One thread for every library that would otherwise use all cores (set before import)."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")


def time_calls(fn: Callable[[], Any], *, repeat: int, warmup: int = 3) -> np.ndarray:
    """Wall time of ``repeat`` calls of ``fn`` after ``warmup`` calls, seconds ``(repeat,)``."""
    for _ in range(warmup):
        fn()
    out = np.empty(repeat)
    for i in range(repeat):
        t0 = time.perf_counter()
        fn()
        out[i] = time.perf_counter() - t0
    return out


def _pct(t: np.ndarray) -> dict[str, float]:
    return {"p50": float(np.percentile(t, 50)), "p99": float(np.percentile(t, 99)),
            "mean": float(t.mean()), "n": int(len(t))}


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


#: CPU features that change which int8 and SIMD kernels run (x86 and Arm names as Linux
#: reports them): a latency or an int8 result is labelled with them.
KERNEL_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl",
                "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8", "neon", "asimd", "asimddp",
                "asimdhp", "i8mm", "sve", "sve2", "bf16")


def cpu_flags(cpuinfo: str) -> list[str]:
    """The :data:`KERNEL_FLAGS` a ``/proc/cpuinfo`` text lists (x86 ``flags``, Arm
    ``Features``), in that order."""
    present: set[str] = set()
    for line in cpuinfo.splitlines():
        key = line.split(":", 1)[0].strip().lower()
        if key in ("flags", "features") and ":" in line:
            present |= set(line.split(":", 1)[1].split())
    return [f for f in KERNEL_FLAGS if f in present]


def machine_info() -> dict[str, Any]:
    """CPU model, its kernel-relevant flags, cores and library versions: a figure means
    nothing without them."""
    cpu = platform.processor() or platform.machine()
    flags: list[str] = []
    try:
        info = Path("/proc/cpuinfo").read_text()
        flags = cpu_flags(info)
        for line in info.splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    libs = ["edge-ad", "numpy", "torch", "onnxruntime", "ai-edge-litert", "tflite-runtime",
            "tensorflow-cpu", "librosa", "cffi"]
    return {"cpu": cpu, "flags": flags, "cores": os.cpu_count(), "machine": platform.machine(),
            "system": f"{platform.system()} {platform.release()}",
            "python": platform.python_version(),
            "versions": {d: v for d in libs if (v := _version(d))}}


# --------------------------------------------------------------------------- front ends
def numpy_logmel_frames(x: np.ndarray, *, spec: FeatureSpec = DEFAULT_SPEC) -> np.ndarray:
    """The fastest plain-numpy log-mel we know: all frames at once through a strided view,
    one batched ``rfft``, a dense mel matrix product. ``(n_frames, n_mels) float32``.

    The peer the C kernel is measured against; its parity with the reference is tested.
    """
    from edge import tables

    pad = spec.n_fft - len(x) % spec.n_fft
    xp = np.concatenate([np.zeros(pad // 2, np.float32), np.asarray(x, np.float32),
                         np.zeros(pad - pad // 2, np.float32)])
    frames = np.lib.stride_tricks.sliding_window_view(xp, spec.n_fft)[::spec.hop_length]
    spectrum = np.fft.rfft(frames * tables.window(spec), axis=1)
    power = (spectrum.real ** 2 + spectrum.imag ** 2).astype(np.float32)
    mel = power @ _mel_t(spec)
    return np.log10(np.maximum(mel, spec.log_floor))


_MEL_T: dict[str, np.ndarray] = {}


def _mel_t(spec: FeatureSpec) -> np.ndarray:
    from edge import tables

    if spec.digest not in _MEL_T:
        _MEL_T[spec.digest] = np.ascontiguousarray(tables.mel_dense(spec).T)
    return _MEL_T[spec.digest]


def librosa_logmel_frames(x: np.ndarray, *, spec: FeatureSpec = DEFAULT_SPEC) -> np.ndarray:
    """librosa with every setting pinned to SPEC section 2 (the peer check of the spec)."""
    import librosa
    from edge import reference, tables

    mel = librosa.feature.melspectrogram(
        y=reference.pad_clip(x, spec).astype(np.float32), sr=spec.sample_rate, n_fft=spec.n_fft,
        hop_length=spec.hop_length, window=tables.window(spec), center=False, power=spec.power,
        n_mels=spec.n_mels, fmin=spec.fmin, fmax=spec.fmax)
    return np.log10(np.maximum(mel, spec.log_floor)).T


def bench_frontends(x: np.ndarray, *, spec: FeatureSpec = DEFAULT_SPEC, repeat: int = 30) -> dict[str, Any]:
    """Log-mel frames of one clip with the C kernel, numpy and librosa; per hop streaming."""
    out: dict[str, Any] = {}
    peers: dict[str, Callable[[], Any]] = {
        "c": lambda: features.logmel_frames(x, spec=spec),
        "numpy": lambda: numpy_logmel_frames(x, spec=spec),
    }
    try:
        import librosa  # noqa: F401
        peers["librosa"] = lambda: librosa_logmel_frames(x, spec=spec)
    except ImportError:
        pass
    for name, fn in peers.items():
        out[name] = {"clip": _pct(time_calls(fn, repeat=repeat))}
    # Streaming: the cost of one hop of samples through the C front end.
    fe = features.Frontend(spec=spec)
    n_hops = min(400, len(x) // spec.hop_length)
    pcm = np.clip(np.asarray(x[: n_hops * spec.hop_length]) * 32768, -32768, 32767).astype(np.int16)
    hop = pcm.reshape(n_hops, spec.hop_length)
    fe.push(hop[0])
    for h in hop[:8]:
        fe.push(h)
    t = np.empty(len(hop))
    for i, h in enumerate(hop):
        t0 = time.perf_counter()
        fe.push(h)
        t[i] = time.perf_counter() - t0
    out["c"]["hop"] = _pct(t)
    return out


def bench_c_stream(bundle: Any, x: np.ndarray, *, n_hops: int = 400) -> dict[str, Any]:
    """One hop of samples through the whole C path the bundle's detector streams with
    (front end, context ring, int8 network, and the error or, for the heads beyond A(X),
    the feature row: ``BundleDetector.c_stream``), per hop percentiles: through the Python
    wrapper, and as the bare cffi call with buffers made once."""
    from edge.detector import open_detector

    spec = bundle.spec
    stream = open_detector(bundle, backend="c", precision="int8").c_stream()
    n_hops = min(n_hops, len(x) // spec.hop_length)
    pcm = np.clip(np.asarray(x[: n_hops * spec.hop_length]) * 32768, -32768, 32767).astype(np.int16)
    hops = pcm.reshape(n_hops, spec.hop_length)
    for h in hops[:8]:
        stream.push(h)
    t = np.empty(len(hops))
    for i, h in enumerate(hops):
        t0 = time.perf_counter()
        stream.push(h)
        t[i] = time.perf_counter() - t0
    # The C call alone, buffers made once (what a C caller pays; the Python wrapper's
    # checks, allocation and column pick are the difference), on the same hops after a reset.
    cs = getattr(stream, "stream", stream)          # under a head's column view
    ffi, lib = cs._ffi, cs._lib
    cs.reset()
    rows = cs._width > 0
    out = np.empty((8, cs._width) if rows else 8, np.float64)
    out_ptr, used, wrote = ffi.from_buffer("double[]", out), ffi.new("size_t *"), ffi.new("size_t *")
    ptrs = [ffi.from_buffer("int16_t[]", h) for h in hops]
    push = lib.ad_stream_push_rows_i16 if rows else lib.ad_stream_push_i16
    tb = np.empty(len(hops))
    bad = 0
    for i, p in enumerate(ptrs):
        t0 = time.perf_counter()
        status = push(cs._state, p, spec.hop_length, out_ptr, 8, used, wrote)
        tb[i] = time.perf_counter() - t0
        bad += status != lib.AD_OK or used[0] != spec.hop_length
    if bad:
        raise EdgeAdError(f"bench: the bare C stream call failed on {bad} of {len(hops)} hops")
    return {"hop": _pct(t), "hop_bare": _pct(tb[8:]), "rows": bool(rows)}


# --------------------------------------------------------------------------- models
@dataclasses.dataclass
class Variant:
    name: str              # e.g. "tflite int8"
    run: Runner
    cutoff: float
    path: str | None       # model file, None for torch
    bytes: int | None


def _torch_runner(run: Any) -> Runner:
    import torch

    torch.set_num_threads(1)
    model = run.model.eval()

    def go(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.from_numpy(x)).numpy()
    return go


def load_variants(*, run: Any | None, bundle: Any | None) -> list[Variant]:
    """Torch float from a RUN, every model file of a BUNDLE, each with its own cutoff."""
    from edge import backends

    out: list[Variant] = []
    if run is not None:
        out.append(Variant("torch float", _torch_runner(run), run.threshold.cutoff, None, None))
    if bundle is not None:
        for backend in ("onnx", "tflite"):
            for precision in ("float", "int8"):
                try:
                    path = bundle.model_path(backend=backend, precision=precision)
                except EdgeAdError:
                    continue
                b = backends.load(path, num_threads=1)
                out.append(Variant(f"{backend} {precision}", b.run,
                                   bundle.threshold_for(Path(path).name).cutoff,
                                   str(path), Path(path).stat().st_size))
        if bundle.has_c_model:
            path = bundle.model_path("c", "int8")
            b = backends.load(path)
            out.append(Variant("c int8", b.run, bundle.threshold_for(path.name).cutoff,
                               str(path), path.stat().st_size))
    out.sort(key=lambda v: VARIANTS.index(v.name))
    return out


def bench_accuracy(variants: list[Variant], clips: list[Any], vectors: Callable[[Any], np.ndarray],
                   *, p: float = 0.1, head: Any = None) -> dict[str, Any]:
    """Per-ID and overall metrics of each variant on the same test clips, scored with the
    detector ``head`` (default SPEC 4's ``A(X)``)."""
    if not clips:
        raise EdgeAdError("bench: no test clips to measure accuracy on")
    labels = np.array([1 if c.label == "anomaly" else 0 for c in clips])
    ids = [str(c.id) for c in clips]
    xs = [vectors(c) for c in clips]
    out: dict[str, Any] = {}
    for v in variants:
        scores = np.array([clip_score(x, v.run(x)) if head is None else
                           head.clip_score(x, v.run(x) if head.needs_model else None) for x in xs])
        table = metrics.evaluate_table(scores, labels, ids, cutoff=v.cutoff, p=p)
        out[v.name] = {"table": table, "scores": scores.tolist()}
    return out


def decision_vectors(every_s: float = 1.0, *, spec: FeatureSpec = DEFAULT_SPEC) -> int:
    """Context vectors that arrive between two decisions of ``edge-ad run --every``: the
    batch the runtime sends to the model per decision (31 for the default 1 s)."""
    return max(1, int(every_s * spec.sample_rate // spec.hop_length))


def bench_latency(variants: list[Variant], x: np.ndarray, *, repeat_vector: int = 300,
                  repeat_clip: int = 30, decision: int | None = None,
                  burst: int = 5) -> dict[str, Any]:
    """Per vector (batch of 1), per decision (the vectors of one ``--every`` step, what
    ``edge-ad run`` sends per call) and per clip (all vectors of a 10 s clip in one batch).

    Timed in bursts, as a model runs in a process that calls it again and again: per round,
    each variant in turn makes one untimed call and then ``burst`` timed calls in a row
    (its weights in the caches, as between two decisions of ``edge-ad run``, whose front end
    between the calls touches little memory). The rounds interleave the variants, so a slow
    moment of the machine (the other core busy) lands on every variant alike and their
    ratios hold.

    ``decision_cold``: the decision batch once more, one call of each variant in turn, so
    that every call starts with caches the other variants have filled (several MB of other
    models' weights and activations): what a call costs on a board that runs other work
    between two decisions.
    """
    decision = decision or decision_vectors()
    batches = {"vector": np.ascontiguousarray(x[:1]),
               "decision": np.ascontiguousarray(x[:decision]), "clip": np.ascontiguousarray(x)}
    repeats = {"vector": repeat_vector, "decision": max(repeat_clip, repeat_vector // 3),
               "clip": repeat_clip}
    out: dict[str, Any] = {v.name: {} for v in variants}
    for kind, batch in batches.items():
        for v in variants:
            for _ in range(20 if kind == "vector" else 3):
                v.run(batch)
        times: dict[str, list[float]] = {v.name: [] for v in variants}
        for _ in range(max(1, repeats[kind] // burst)):
            for v in variants:
                v.run(batch)
                for _ in range(burst):
                    t0 = time.perf_counter()
                    v.run(batch)
                    times[v.name].append(time.perf_counter() - t0)
        for v in variants:
            out[v.name][kind] = _pct(np.array(times[v.name]))
            out[v.name][kind]["batch"] = len(batch)
    batch = batches["decision"]
    cold = {v.name: np.empty(repeats["decision"]) for v in variants}
    for i in range(repeats["decision"]):
        for v in variants:
            t0 = time.perf_counter()
            v.run(batch)
            cold[v.name][i] = time.perf_counter() - t0
    for v in variants:
        out[v.name]["decision_cold"] = _pct(cold[v.name])
        out[v.name]["decision_cold"]["batch"] = len(batch)
        out[v.name]["vectors_per_s"] = float(len(x) / out[v.name]["clip"]["p50"])
    return out


def int8_speedups(latency: dict[str, Any]) -> dict[str, dict[str, float]]:
    """``{runtime: {"vector"|"decision"|"clip": float p50 / int8 p50}}`` (above 1: int8 is
    faster) for every runtime measured in both precisions."""
    out: dict[str, dict[str, float]] = {}
    # The C int8 network has no float of its own: LiteRT float and LiteRT int8 are its peers.
    pairs = {"onnx": ("onnx float", "onnx int8"), "tflite": ("tflite float", "tflite int8"),
             "c": ("tflite float", "c int8"), "c vs tflite int8": ("tflite int8", "c int8")}
    for key, (ref, fast) in pairs.items():
        f, q = latency.get(ref), latency.get(fast)
        if f and q:
            out[key] = {k: f[k]["p50"] / q[k]["p50"]
                        for k in ("vector", "decision", "clip", "decision_cold")
                        if k in f and k in q}
    return out


def bench_edge_path(bundle_dir: str | Path, recording: str | Path, *, backend: str = "tflite",
                    precision: str = "int8") -> dict[str, Any]:
    """The edge path as a board runs it: ``edge-ad run --device FILE --fast`` in its own
    process. Real-time factor from the audio length and the wall time of the stream loop
    (which the runtime reports), peak resident memory from the child's rusage."""
    import soundfile as sf

    seconds = sf.info(str(recording)).duration
    with tempfile.TemporaryDirectory() as tmp:
        lines, status = Path(tmp) / "decisions.jsonl", Path(tmp) / "status"
        argv = ["-q", "run", "--device", str(recording), "--fast", "--model", str(bundle_dir),
                "--backend", backend, "--precision", precision, "--json-out", str(lines)]
        # The child reports its own peak RSS (VmHWM) at exit: rusage of a child forked from
        # this process would count the pages it shared with us (torch, TensorFlow) before exec.
        code = ("import atexit, shutil, sys; from edge.cli import main; "
                f"atexit.register(lambda: shutil.copyfile('/proc/self/status', {str(status)!r})); "
                f"sys.exit(main({argv!r}))")
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise EdgeAdError(f"bench: edge-ad run failed ({proc.returncode}): {proc.stderr.strip()[-400:]}")
        hwm_kib = next(int(line.split()[1]) for line in status.read_text().splitlines()
                       if line.startswith("VmHWM:"))
        decisions = [json.loads(s) for s in lines.read_text().splitlines() if s.strip()]
    return {"audio_s": seconds, "wall_s": wall, "rtf": seconds / wall,
            "decisions": len(decisions), "alarms": sum(bool(d.get("alarm")) for d in decisions),
            "peak_rss_mib": hwm_kib / 1024.0, "backend": f"{backend} {precision}"}


def time_edge_stream(bundle: Any, recording: str | Path, *, backend: str | None = None,
                     precision: str = "int8") -> dict[str, Any]:
    """Real-time factor of the stream loop alone (no process start-up): WAV blocks in,
    decisions out, through the same Detector ``edge-ad run`` uses."""
    from edge.capture import FileSource
    from edge.detector import open_detector
    from edge.stream import Detector

    backend = backend or bundle.default_backend(precision)
    loaded = open_detector(bundle, backend=backend, precision=precision)
    det = Detector(loaded.backend, cutoff=loaded.cutoff, spec=bundle.spec, head=loaded.head)
    src = FileSource(recording, spec=bundle.spec, fast=True)
    blocks = list(src)
    n = sum(len(b) for b in blocks)
    t0 = time.perf_counter()
    decisions = [d for b in blocks for d in det.push(b)]
    wall = time.perf_counter() - t0
    return {"audio_s": n / bundle.spec.sample_rate, "wall_s": wall,
            "rtf": n / bundle.spec.sample_rate / wall, "decisions": len(decisions),
            "backend": f"{backend} {precision}"}


# --------------------------------------------------------------------------- report
def _fmt_t(s: float) -> str:
    return f"{s * 1e6:.1f} us" if s < 1e-3 else f"{s * 1e3:.2f} ms"


def render(result: dict[str, Any]) -> str:
    """The terminal table: absolute figures with ratios against the float reference."""
    lines: list[str] = []
    m = result["machine"]
    lines.append(f"machine: {m['cpu']}, {m['cores']} cores, {m['system']}, Python {m['python']}")
    if m.get("flags"):
        lines.append(f"  CPU flags: {' '.join(m['flags'])}")
    lines.append("  " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()))
    acc = result.get("accuracy", {})
    lat = result.get("latency", {})
    if acc or lat:
        ref = next(iter(acc or lat))
        lines.append("")
        lines.append(f"{'model':<13} {'AUC':>6} {'pAUC':>6} {'pAUC-McC':>8} {'TPR':>6} {'FPR':>6} "
                     f"{'vec p50':>9} {'dec p50':>9} {'clip p50':>9} {'x ' + ref:>14} {'size':>9}")
        ref_clip = lat.get(ref, {}).get("clip", {}).get("p50")
        for name in VARIANTS:
            if name not in acc and name not in lat:
                continue
            o = acc.get(name, {}).get("table", {}).get("overall", {})
            lt = lat.get(name, {})
            size = result.get("sizes", {}).get(name)
            ratio = (ref_clip / lt["clip"]["p50"]) if ref_clip and lt else float("nan")
            lines.append(
                f"{name:<13} {o.get('auc', float('nan')):6.3f} {o.get('pauc', float('nan')):6.3f} "
                f"{o.get('pauc_mcclish', float('nan')):8.3f} {o.get('tpr', float('nan')):6.3f} "
                f"{o.get('fpr', float('nan')):6.3f} "
                f"{_fmt_t(lt['vector']['p50']) if lt else '-':>9} "
                f"{_fmt_t(lt['decision']['p50']) if lt and 'decision' in lt else '-':>9} "
                f"{_fmt_t(lt['clip']['p50']) if lt else '-':>9} {ratio:13.2f}x "
                f"{(f'{size / 1024:.1f} KiB') if size else '-':>9}")
        names = {"onnx": "onnx int8 against onnx float", "tflite": "tflite int8 against tflite float",
                 "c": "c int8 against tflite float", "c vs tflite int8": "c int8 against tflite int8"}
        for key, r in int8_speedups(lat).items():
            lines.append(f"  {names[key]}: " + ", ".join(
                f"{k.replace('decision_cold', 'decision after the other variants')} {v:.2f}x"
                for k, v in r.items()) + " faster")
        ids = sorted({i for a in acc.values() for i in a["table"]["per_id"]})
        if ids:
            lines.append("")
            lines.append(f"{'AUC per ID':<12}" + " ".join(f"{i:>8}" for i in ids))
            for name, a in acc.items():
                lines.append(f"{name:<12}" + " ".join(f"{a['table']['per_id'][i]['auc']:8.3f}" for i in ids))
    fe = result.get("frontend")
    if fe:
        c = fe["c"]["clip"]["p50"]
        lines.append("")
        lines.append("front end, one 10 s clip (log-mel frames), single thread:")
        for name, f in fe.items():
            t = f["clip"]["p50"]
            lines.append(f"  {name:<8} {_fmt_t(t):>10}   C is {t / c:6.1f}x faster" if name != "c"
                         else f"  {name:<8} {_fmt_t(t):>10}   per hop {_fmt_t(f['hop']['p50'])} (p99 {_fmt_t(f['hop']['p99'])})")
    cs = result.get("c_stream")
    if cs:
        bare = cs.get("hop_bare")
        what = "feature row" if cs.get("rows") else "error"
        lines.append(f"  c path   per hop {_fmt_t(cs['hop']['p50'])} (p99 {_fmt_t(cs['hop']['p99'])}): "
                     f"front end, int8 network and {what} in one C call"
                     + (f"; the bare cffi call {_fmt_t(bare['p50'])} (p99 {_fmt_t(bare['p99'])})"
                        if bare else ""))
    for key, title in (("edge_stream", "edge stream loop (in process)"),
                       ("edge_process", "edge-ad run process"),
                       ("edge_process_tflite", "edge-ad run process")):
        e = result.get(key)
        if e:
            extra = f", peak RSS {e['peak_rss_mib']:.0f} MiB" if "peak_rss_mib" in e else ""
            lines.append(f"{title} ({e.get('backend', '?')}): {e['audio_s']:.0f} s of audio in "
                         f"{e['wall_s']:.2f} s = {e['rtf']:.0f}x real time, "
                         f"{e['decisions']} decisions{extra}")
    return "\n".join(lines)


def plot(result: dict[str, Any], path: str | Path) -> None:
    """Latency bars per variant and AUC per ID, float against int8, in one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    lat = result.get("latency", {})
    names = [n for n in VARIANTS if n in lat]
    ax1.bar(names, [lat[n]["clip"]["p50"] * 1e3 for n in names], color=["C0" if "float" in n else "C1" for n in names])
    ax1.set_ylabel("ms per 10 s clip (p50, 1 thread)")
    ax1.set_title("Inference latency")
    ax1.tick_params(axis="x", rotation=30)
    acc = result.get("accuracy", {})
    names = [n for n in VARIANTS if n in acc]
    ids = sorted({i for a in acc.values() for i in a["table"]["per_id"]})
    width = 0.8 / max(1, len(names))
    for k, n in enumerate(names):
        ax2.bar(np.arange(len(ids)) + k * width, [acc[n]["table"]["per_id"][i]["auc"] for i in ids],
                width, label=n)
    ax2.set_xticks(np.arange(len(ids)) + width * (len(names) - 1) / 2, list(ids))
    ax2.set_ylim(0.4, 1.0)
    ax2.axhline(0.5, color="grey", lw=0.8, ls=":")
    ax2.set_ylabel("AUC")
    ax2.set_title("AUC per machine ID")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
