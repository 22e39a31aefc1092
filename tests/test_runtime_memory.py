"""Two hours of audio through ``edge-ad run`` (a file looped, ``--fast``), with each backend
(edge-ad's C kernel, LiteRT, ONNX Runtime): nothing accumulates per vector or per decision.
A behaviour test, not a memory figure: the Python heap that ``tracemalloc`` traces (every
numpy buffer included; the C kernels allocate nothing, their memory is handed in) and the
bytes live in glibc's malloc (``mallinfo2``: libsndfile, the runtimes, anything native) are
read after every 25th decision line, and what is live late in the run is what was live in
its middle. The resident size itself, and the CPU share at real time, are figures, reported
by scripts/runtime_footprint.py."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from runtime_support import bundle_dir, edge_env, load_trained_run, normal_audio, write_wav

#: Runs ``edge-ad run`` in process under tracemalloc; after every 25th line written to the
#: ``--json-out`` file, after a full collection, the traced size of live Python allocations
#: and glibc's live malloc bytes (in use + mmapped, not resident); the list on stderr at exit.
DRIVER = """
import gc, json, sys, tracemalloc
import numpy as np
tracemalloc.start()
import ctypes
import edge.output
from edge.cli import main
libc = ctypes.CDLL(None)
field = ctypes.c_size_t if hasattr(libc, "mallinfo2") else ctypes.c_int   # glibc < 2.33: mallinfo
class Mallinfo(ctypes.Structure):
    _fields_ = [(f, field) for f in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                                     "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
mallinfo = libc.mallinfo2 if hasattr(libc, "mallinfo2") else libc.mallinfo
mallinfo.restype = Mallinfo
def native():
    m = mallinfo()
    return m.uordblks + m.hblkhd
out, original = sys.argv[sys.argv.index("--json-out") + 1], edge.output.LineWriter.write_line
live = np.zeros((1000, 3), np.int64)     # filled in place: the measurement keeps nothing
def write_line(self, text):
    ok = original(self, text)
    if self.name == out:
        write_line.n += 1
        if write_line.n % 25 == 0 and write_line.n // 25 <= len(live):
            gc.collect()      # garbage in reference cycles is not kept, only not yet freed
            live[write_line.n // 25 - 1] = write_line.n, tracemalloc.get_traced_memory()[0], native()
    return ok
write_line.n = 0
edge.output.LineWriter.write_line = write_line
code = main(sys.argv[1:])
sys.stderr.write("LIVE " + json.dumps(live[live[:, 0] > 0].tolist()) + "\\n")
sys.exit(code)
"""


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["c", "tflite", "onnx"])
def test_nothing_accumulates_over_two_hours_of_audio(backend, bundle, trained_run, tmp_path):
    run = load_trained_run(trained_run)
    wav = write_wav(tmp_path / "loop.wav", normal_audio(run, 20.0))
    out = tmp_path / "d.jsonl"
    hours = 2 * 3600
    p = subprocess.run([sys.executable, "-c", DRIVER, "run", "--device", str(wav), "--fast", "--loop",
                        "--model", str(bundle_dir(bundle)), "--backend", backend, "--max-seconds", str(hours),
                        "--json-out", str(out)],
                       env=edge_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       timeout=1800)       # a hang guard only; the run takes about a minute
    err = p.stderr.decode()
    assert p.returncode == 0, err
    n = out.read_bytes().count(b"\n")
    assert n == hours - 10  # every decision of the two hours was written
    live = json.loads(err.rsplit("LIVE ", 1)[1].splitlines()[0])
    assert len(live) == n // 25
    # Bounded warm-up (caches, free lists, what the bundle follower and the log keep by
    # wall time) is over well before the first stretch. Between the two stretches lie
    # about 2,900 decisions and 90,000 vectors: 1 byte kept per vector, or 30 per
    # decision, would add 88 KiB.
    early = np.array([row for row in live if 0.3 * n <= row[0] <= 0.5 * n])
    late = np.array([row for row in live if row[0] >= 0.8 * n])
    for col, what, limit in ((1, "live Python allocations (tracemalloc)", 32 * 1024),
                             (2, "live malloc bytes (glibc mallinfo)", 64 * 1024)):
        growth = np.median(late[:, col]) - np.median(early[:, col])
        assert growth < limit, (f"{what} grew by {growth:.0f} bytes (early "
                                f"{np.median(early[:, col]):.0f}, late {np.median(late[:, col]):.0f})")
