"""Cross-build the C kernel (edge._frontend) for aarch64 (or, with ``--cc
arm-linux-gnueabihf-gcc``, armhf) and lay out an importable copy of the ``edge`` package
around it, for the Pi-class end-to-end tests.

    python scripts/arm64/build_kernel.py --root ~/.cache/edge-ad/arm64/root --out DIR

writes ``DIR/edge/`` (the repository's Python sources) with
``DIR/edge/_frontend.cpython-311-aarch64-linux-gnu.so`` beside them, so an aarch64 Python run
with ``PYTHONPATH=DIR:...`` imports the cross-built kernel and nothing built for x86.

The extension is exactly the one ``pip install .`` builds: the same ``FFI`` object from
``csrc/build_frontend.py`` (its cdef, its ``set_source`` preamble, sources, include dirs,
macros and libraries), with the C that cffi generates for it (``ffi.emit_c_code``), compiled
by ``aarch64-linux-gnu-gcc`` with the flags the board's own CPython would give setuptools
(its sysconfig: CFLAGS, CCSHARED, LDSHARED) plus ``-mcpu=cortex-a72`` (Raspberry Pi 4),
against the arm64 root's CPython headers. setuptools cannot cross-compile an extension for
another interpreter, hence this small driver.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import runpy
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# Host-specific code generation options do not carry over to the target; -mcpu is set here.
_HOST_ONLY = ("-march", "-mtune", "-mcpu", "-mavx", "-msse", "-mfma", "-mf16c", "-mbmi", "-mpopcnt")


def load_ffi(build_script: Path):
    """The ``ffi`` object of ``csrc/build_frontend.py``, loaded as setup.py's cffi_modules
    would (from the repository root, which also makes ``edge.*`` importable for table
    generation at build time)."""
    sys.path[:0] = [str(REPO), str(build_script.parent)]
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        ffi = runpy.run_path(str(build_script), run_name="edge_ad_cross_build")["ffi"]
    finally:
        os.chdir(cwd)
    if not hasattr(ffi, "_assigned_source"):
        raise SystemExit(f"{build_script}: ffi.set_source() was not called")
    return ffi


def _repo_path(p: str) -> str:
    return p if os.path.isabs(p) else str(REPO / p)


def target_config(root: Path) -> dict[str, str]:
    """The target interpreter's own build variables (CC, CFLAGS, CCSHARED, LDSHARED,
    EXT_SUFFIX): what setuptools would use if ``pip install .`` ran on the board itself."""
    found = sorted((root / "usr/lib/python3.11").glob("_sysconfigdata__linux_*.py"))
    if len(found) != 1:
        raise SystemExit(f"{root}/usr/lib/python3.11: expected one _sysconfigdata__linux_*.py, "
                         f"found {len(found)} (run scripts/setup-arm64.sh or setup-armhf.sh)")
    return runpy.run_path(str(found[0]))["build_time_vars"]


def compile_commands(ffi, c_file: Path, out: Path, *, obj_dir: Path, root: Path, cc: str,
                     cpu: str, extra: tuple[str, ...] = ()) -> list[list[str]]:
    """Compile each source to an object, then link, with the flags distutils would use on
    the board (target sysconfig + the ffi's own options) plus ``-mcpu``."""
    _, _, _, kwds = ffi._assigned_source  # cffi keeps set_source's keywords here
    config = target_config(root)
    cflags = config["CFLAGS"].split() + config["CCSHARED"].split()
    cflags += [f"-I{root}/usr/include/python3.11",
               # Debian's pyconfig.h includes <aarch64-linux-gnu/python3.11/pyconfig.h>;
               # searched after the cross toolchain's own libc headers, which stay first.
               f"-idirafter{root}/usr/include"]
    cflags += [f"-I{_repo_path(d)}" for d in kwds.get("include_dirs", [])]
    for name, value in kwds.get("define_macros", []):
        cflags.append(f"-D{name}" if value is None else f"-D{name}={value}")
    cflags += [f"-U{m}" for m in kwds.get("undef_macros", [])]
    cflags += [a for a in kwds.get("extra_compile_args", []) if not a.startswith(_HOST_ONLY)]
    cflags.append(f"-mcpu={cpu}")
    cflags += list(extra)
    sources = [str(c_file)] + [_repo_path(s) for s in kwds.get("sources", [])]
    objects = [str(obj_dir / f"{i:02d}-{Path(s).stem}.o") for i, s in enumerate(sources)]
    commands = [[cc, *cflags, "-c", src, "-o", obj] for src, obj in zip(sources, objects)]
    link = [cc, *config["LDSHARED"].split()[1:], *objects]
    link += [f"-L{_repo_path(d)}" for d in kwds.get("library_dirs", [])]
    link += [f"-l{lib}" for lib in kwds.get("libraries", [])]
    link += [a for a in kwds.get("extra_link_args", []) if not a.startswith(_HOST_ONLY)]
    commands.append([*link, "-o", str(out)])
    return commands


def build(*, root: Path, out: Path, build_script: Path, cc: str, cpu: str,
          extra: tuple[str, ...] = ()) -> Path:
    """Build into ``out/edge``; returns the path of the aarch64 extension."""
    ffi = load_ffi(build_script)
    module_name = ffi._assigned_source[0]
    package, _, leaf = module_name.rpartition(".")
    if package != "edge":
        raise SystemExit(f"{build_script}: expected a module inside edge, got {module_name!r}")
    pkg = out / "edge"
    if pkg.exists():
        shutil.rmtree(pkg)
    # The Python sources as they are in the tree; no x86 extension, no bytecode.
    shutil.copytree(REPO / "edge", pkg, ignore=shutil.ignore_patterns("*.so", "__pycache__", "*.pyc"))
    gen = out / "gen"
    gen.mkdir(parents=True, exist_ok=True)
    c_file = gen / f"{leaf}.c"
    with contextlib.redirect_stdout(sys.stderr):  # cffi reports "generating ..." on stdout
        ffi.emit_c_code(str(c_file))
    target = pkg / f"{leaf}{target_config(root)['EXT_SUFFIX']}"
    commands = compile_commands(ffi, c_file, target, obj_dir=gen, root=root, cc=cc, cpu=cpu,
                                extra=extra)
    (gen / "commands.txt").write_text("".join(" ".join(c) + "\n" for c in commands))
    for cmd in commands:
        done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"cross-compiling {module_name} failed:\n{' '.join(cmd)}\n{done.stderr}")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, required=True, help="the arm64 Debian root (setup-arm64.sh)")
    parser.add_argument("--out", type=Path, required=True, help="directory to put edge/ in")
    parser.add_argument("--build-script", type=Path, default=REPO / "csrc" / "build_frontend.py")
    parser.add_argument("--cc", default="aarch64-linux-gnu-gcc")
    parser.add_argument("--cpu", default="cortex-a72", help="-mcpu (default: cortex-a72, Raspberry Pi 4)")
    parser.add_argument("--cflag", action="append", default=[],
                        help="one more compiler flag, repeatable (e.g. -mfpu=neon-vfpv4 for an "
                             "armhf build with NEON; default: none)")
    args = parser.parse_args(argv)
    if not (args.root / "usr/include/python3.11/Python.h").is_file():
        raise SystemExit(f"{args.root}: no usr/include/python3.11/Python.h (run scripts/setup-arm64.sh)")
    if not args.build_script.is_file():
        raise SystemExit(f"{args.build_script}: not found (the C kernel's cffi build script)")
    print(build(root=args.root.resolve(), out=args.out.resolve(), build_script=args.build_script.resolve(),
                cc=args.cc, cpu=args.cpu, extra=tuple(args.cflag)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
