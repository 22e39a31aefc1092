"""cffi build script (API mode) for the C front end: ``edge._frontend``.

setup.py names it in ``cffi_modules``, so ``pip install .`` / ``pip wheel .`` compile the
kernel; ``python setup.py build_ext --inplace`` rebuilds it in place after a C change.
The declarations Python sees are in frontend_cdef.h; the real header is edge_ad.h.
"""
from __future__ import annotations

import os
import pathlib
import sys

from cffi import FFI

HERE = pathlib.Path(__file__).resolve().parent
# setuptools wants source paths relative to the project root it runs in
_REL = pathlib.Path(os.path.relpath(HERE, os.getcwd()))
SOURCES = sorted(str(_REL / p.name) for p in HERE.glob("ad_*.c"))
HEADERS = sorted(str(_REL / p.name) for p in HERE.glob("*.h"))

# -O3: the stage loops are written to vectorise; no -ffast-math (it would let the compiler
# reorder the mel sums and drop NaN handling, and parity is pinned to 1e-3);
# -ffp-contract=off: no fused multiply-add on ARM either, so a board computes the same
# features as the x86 machine that trained the model (tests/test_frontend_c.py checks).
# -fno-wrapv: Python's own CFLAGS carry -fwrapv, which stops GCC from vectorising the
# sparse mel loop (2x slower); this code never relies on signed overflow wrapping.
COMPILE_ARGS = [] if sys.platform == "win32" else [
    "-O3", "-fno-wrapv", "-fno-math-errno", "-ffp-contract=off"]

ffi = FFI()
ffi.cdef((HERE / "frontend_cdef.h").read_text())
ffi.set_source(
    "edge._frontend",
    '#include "edge_ad.h"',
    sources=SOURCES,
    include_dirs=[str(_REL)],
    extra_compile_args=COMPILE_ARGS,
    libraries=[] if sys.platform == "win32" else ["m"],
    depends=HEADERS,  # a header change rebuilds too, not only a .c change
)
