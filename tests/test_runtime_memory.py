"""An hour of audio through ``edge-ad run`` (a file looped, ``--fast``): nothing accumulates
per vector or per decision. A behaviour test, not a memory figure: the Python heap that
``tracemalloc`` traces (every numpy buffer included; the C kernels allocate nothing, their
memory is handed in) is read after each decision line, and what is live late in the hour
is what was live early. The resident size itself, and the CPU share at real time, are
figures, reported by scripts/runtime_footprint.py."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from runtime_support import bundle_dir, edge_env, load_trained_run, normal_audio, write_wav

#: Runs ``edge-ad run`` in process under tracemalloc; after every 25th line written to the
#: ``--json-out`` file, the traced size of live allocations after a full collection; the
#: list on stderr at exit.
DRIVER = """
import gc, json, sys, tracemalloc
import numpy as np
tracemalloc.start()
import edge.output
from edge.cli import main
out, original = sys.argv[sys.argv.index("--json-out") + 1], edge.output.LineWriter.write_line
live = np.zeros((1000, 2), np.int64)     # filled in place: the measurement keeps nothing
def write_line(self, text):
    ok = original(self, text)
    if self.name == out:
        write_line.n += 1
        if write_line.n % 25 == 0 and write_line.n // 25 <= len(live):
            gc.collect()      # garbage in reference cycles is not kept, only not yet freed
            live[write_line.n // 25 - 1] = write_line.n, tracemalloc.get_traced_memory()[0]
    return ok
write_line.n = 0
edge.output.LineWriter.write_line = write_line
code = main(sys.argv[1:])
sys.stderr.write("LIVE " + json.dumps(live[live[:, 0] > 0].tolist()) + "\\n")
sys.exit(code)
"""


@pytest.mark.slow
def test_nothing_accumulates_over_an_hour_of_audio(bundle, trained_run, tmp_path):
    run = load_trained_run(trained_run)
    wav = write_wav(tmp_path / "loop.wav", normal_audio(run, 20.0))
    out = tmp_path / "d.jsonl"
    hour = 3600
    p = subprocess.run([sys.executable, "-c", DRIVER, "run", "--device", str(wav), "--fast", "--loop",
                        "--model", str(bundle_dir(bundle)), "--max-seconds", str(hour),
                        "--json-out", str(out)],
                       env=edge_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       timeout=1800)       # a hang guard only; the run takes about a minute
    err = p.stderr.decode()
    assert p.returncode == 0, err
    n = out.read_bytes().count(b"\n")
    assert n == hour - 10  # every decision of the hour was written
    live = json.loads(err.rsplit("LIVE ", 1)[1].splitlines()[0])
    assert len(live) == n // 25
    early = [b for d, b in live if 0.1 * n <= d <= 0.3 * n]
    late = [b for d, b in live if d >= 0.8 * n]
    # 112,000 vectors and 3,590 decisions: 1 byte kept per vector, or 20 per decision,
    # would add 70 KiB between the two stretches.
    growth = np.median(late) - np.median(early)
    assert growth < 16 * 1024, (f"live Python memory grew by {growth:.0f} bytes over the hour "
                                f"(early {np.median(early):.0f}, late {np.median(late):.0f})")
