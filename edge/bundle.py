"""The bundle (SPEC section 6): what the edge device receives, written atomically, verified
before use.

A bundle is a directory::

    model_int8.tflite  model_float.tflite  model_int8.onnx  model_float.onnx   (any subset)
    model_int8.adq8    the int8 network for edge-ad's C kernel, derived from
                       model_int8.tflite's tensors (edge.dense; same integers, same cutoff)
    head.json head.bin the detector head that turns reconstructions into scores
                       (edge.heads; absent: SPEC 4's A(X))
    feature_spec.json  the FeatureSpec the model was trained on (canonical JSON)
    threshold.json     {model file name: Threshold}, one cutoff per model file
    manifest.json      schema_version, sha256 and size of every other file, the spec
                       digest, per-model metrics, versions, creation time, gate settings

No pickle anywhere: JSON and the model formats only. :func:`load_bundle` checks every hash
and size, missing files, model files the manifest does not list, and the spec digest, and
raises :class:`~edge.errors.BundleError` naming the file. (The hashes catch corruption and
half-copied or edited bundles; they are not a signature against a deliberate attacker who
can rewrite the manifest too.)

:func:`write_bundle` builds the bundle in a temporary directory beside the target (same
file system), fsyncs every file and the directory, then swaps it into place: an atomic
exchange (Linux ``renameat2(RENAME_EXCHANGE)``) when the target exists, a rename otherwise.
A failed or killed export leaves the previous bundle exactly as it was.
"""
from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import os
import stat
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping

from . import __version__
from .atomic import replace_folder
from .errors import BundleError, BundleNotFoundError, EdgeAdError
from .spec import FeatureSpec
from .threshold import Threshold

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
SPEC_FILE = "feature_spec.json"
THRESHOLD_FILE = "threshold.json"
MODEL_FILES: dict[tuple[str, str], str] = {
    ("tflite", "int8"): "model_int8.tflite",
    ("tflite", "float"): "model_float.tflite",
    ("onnx", "int8"): "model_int8.onnx",
    ("onnx", "float"): "model_float.onnx",
}
#: the C kernel's int8 network: read out of model_int8.tflite, whose cutoff it shares
C_INT8_FILE = "model_int8.adq8"
C_SOURCE_FILE = MODEL_FILES[("tflite", "int8")]
# Files a runtime could pick up by mistake: refused when the manifest does not list them.
MODEL_SUFFIXES = (".tflite", ".onnx", ".pt", ".pth", ".pkl", ".pickle", ".npz", ".data")
# Test hook: seconds to sleep after each file written into the temporary directory, so a
# test can kill an export in the middle of writing. Unset in normal use.
WRITE_DELAY_ENV = "EDGE_AD_BUNDLE_WRITE_DELAY"


def model_filename(backend: str, precision: str) -> str:
    """``("tflite", "int8") -> "model_int8.tflite"``; BundleError for an unknown pair."""
    try:
        return MODEL_FILES[(backend, precision)]
    except KeyError:
        raise BundleError(f"no model file for backend={backend!r}, precision={precision!r}; "
                          f"expected backend in ('tflite', 'onnx'), precision in "
                          "('int8', 'float')") from None


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclasses.dataclass(frozen=True)
class Bundle:
    """A verified bundle. Build with :func:`load_bundle`."""

    path: Path
    spec: FeatureSpec
    manifest: dict[str, Any]
    thresholds: dict[str, Threshold]

    @property
    def models(self) -> list[str]:
        """Model file names in the bundle, sorted."""
        return sorted(self.manifest["models"])

    @property
    def has_c_model(self) -> bool:
        """Whether the bundle carries the C kernel's int8 network (:data:`C_INT8_FILE`)."""
        return C_INT8_FILE in self.manifest["files"]

    @property
    def head(self) -> Any:
        """The detector head (:mod:`edge.heads`) the bundle's cutoffs were fitted with:
        ``head.json`` + ``head.bin`` where the manifest lists them (verified like every
        file), else SPEC 4's ``A(X)`` (bundles from before heads)."""
        from .heads import HEAD_BIN, HEAD_JSON, MSEHead, load_head

        files = self.manifest["files"]
        if HEAD_JSON not in files:
            return MSEHead(self.spec)
        if HEAD_BIN not in files:
            raise BundleError(f"{self.path / MANIFEST}: lists {HEAD_JSON} without {HEAD_BIN}")
        return load_head(self.path, self.spec)

    def default_backend(self, precision: str = "int8") -> str:
        """``"c"`` for int8 where the bundle has the C network and the kernel is built (no
        model runtime needed, the reference kernels' bits), else ``"tflite"``."""
        if precision == "int8" and self.has_c_model:
            from .backends.c import kernel_built
            if kernel_built():
                return "c"
        return "tflite"

    def model_path(self, backend: str = "tflite", precision: str = "int8") -> Path:
        """Path of the model for ``backend`` and ``precision``; BundleError if absent."""
        if backend == "c":
            if precision != "int8":
                raise BundleError(f"--backend c runs the int8 network only (asked for "
                                  f"{precision}); use --backend tflite or onnx for float")
            if not self.has_c_model:
                raise BundleError(f"{self.path}: has no {C_INT8_FILE} (exported without int8 "
                                  "TFLite, or by an edge-ad without the C int8 kernel); "
                                  "re-export it, or use --backend tflite")
            return self.path / C_INT8_FILE
        name = model_filename(backend, precision)
        if name not in self.manifest["models"]:
            raise BundleError(f"{self.path}: has no {name} (it holds {', '.join(self.models)})")
        return self.path / name

    def threshold_for(self, filename: str | os.PathLike) -> Threshold:
        """The cutoff fitted for that model file (a name or a path inside the bundle)."""
        name = Path(filename).name
        if name == C_INT8_FILE:
            name = C_SOURCE_FILE
        try:
            return self.thresholds[name]
        except KeyError:
            raise BundleError(f"{self.path / THRESHOLD_FILE}: no threshold for {name} "
                              f"(it has {sorted(self.thresholds)})") from None

    def load_backend(self, backend: str = "tflite", precision: str = "int8", *,
                     num_threads: int = 1):
        """Load the model with :func:`edge.backends.load`; returns ``(Backend, Threshold)``."""
        from .backends import load
        path = self.model_path(backend, precision)
        return load(path, num_threads=num_threads), self.threshold_for(path.name)


# --- reading -------------------------------------------------------------------------------
#: Largest JSON file of a bundle read (bytes) and deepest nesting accepted: a manifest is a
#: few kB four levels deep; a calibration history of KEEP_HISTORY entries stays far below.
MAX_JSON_BYTES = 4 * 1024 * 1024
MAX_JSON_DEPTH = 32


def _regular_file(path: Path) -> os.stat_result:
    """``lstat`` of a file inside the bundle; a symlink, folder, FIFO or device is refused:
    a bundle is read only from its own regular files (a link could point anywhere)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise BundleError(f"{path}: missing (listed in {MANIFEST})") from None
    except OSError as e:
        raise BundleError(f"{path}: cannot read ({e.strerror})") from None
    if stat.S_ISLNK(st.st_mode):
        raise BundleError(f"{path}: is a symbolic link; a bundle holds only regular files "
                          "(copy the file in instead)")
    if not stat.S_ISREG(st.st_mode):
        raise BundleError(f"{path}: not a regular file; a bundle holds only regular files")
    return st


def _depth(obj: Any) -> int:
    """Nesting depth of parsed JSON, iteratively (a recursive walk is what overflows)."""
    deepest, todo = 0, [(obj, 1)]
    while todo:
        o, d = todo.pop()
        if isinstance(o, (dict, list)):
            deepest = max(deepest, d)
            if d <= MAX_JSON_DEPTH:
                todo.extend((v, d + 1) for v in (o.values() if isinstance(o, dict) else o))
    return deepest


def _read_json(path: Path) -> Any:
    size = _regular_file(path).st_size
    if size > MAX_JSON_BYTES:
        raise BundleError(f"{path}: {size} bytes; expected at most {MAX_JSON_BYTES} for a "
                          "bundle's JSON file")
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise BundleError(f"{path}: cannot read ({e.strerror})") from None
    except RecursionError:
        raise BundleError(f"{path}: nested deeper than {MAX_JSON_DEPTH} levels") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BundleError(f"{path}: not valid JSON ({e})") from None
    if _depth(obj) > MAX_JSON_DEPTH:
        raise BundleError(f"{path}: nested deeper than {MAX_JSON_DEPTH} levels")
    return obj


def check_manifest(manifest: Any, where: Path) -> None:
    """The manifest's types, checked before any value is used (schema version 1).

    Hand-written rather than ``jsonschema``: the board installs no more than it must, the
    schema is a dozen lines, and each refusal names the key and what was expected::

        {"schema_version": 1, "spec_digest": str,
         "files": {NAME: {"sha256": 64 hex, "bytes": int >= 0}},   NAME a plain file name
         "models": {NAME: {...}} (non-empty, each listed in files),
         "calibrations": [ {...} ] (optional)}
    """
    def bad(key: str, expected: str) -> BundleError:
        return BundleError(f"{where}: {key}: expected {expected}")

    if not isinstance(manifest, dict):
        raise bad("top level", "an object")
    if manifest.get("schema_version") != SCHEMA_VERSION:
        raise BundleError(f"{where}: schema_version {manifest.get('schema_version')!r}; "
                          f"expected {SCHEMA_VERSION}")
    if not isinstance(manifest.get("spec_digest"), str):
        raise bad("spec_digest", "a string")
    files, models = manifest.get("files"), manifest.get("models")
    if not isinstance(files, dict) or not files:
        raise bad("files", "a non-empty object {file name: {sha256, bytes}}")
    if not isinstance(models, dict) or not models:
        raise bad("models", "a non-empty object {model file name: {...}}")
    for name, entry in files.items():
        if not name or Path(name).name != name or name in (".", "..", MANIFEST):
            raise bad(f"files[{name!r}]", "a plain file name in the bundle folder")
        if not isinstance(entry, dict):
            raise bad(f"files[{name!r}]", "an object {sha256, bytes}")
        digest, size = entry.get("sha256"), entry.get("bytes")
        if not (isinstance(digest, str) and len(digest) == 64
                and all(c in "0123456789abcdef" for c in digest)):
            raise bad(f"files[{name!r}].sha256", "64 lower-case hex digits")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise bad(f"files[{name!r}].bytes", "a whole number >= 0")
    for name, entry in models.items():
        if not isinstance(entry, dict):
            raise bad(f"models[{name!r}]", "an object")
    if not isinstance(manifest.get("calibrations", []), list):
        raise bad("calibrations", "a list")


def load_bundle(path: str | os.PathLike, *, expected_spec: FeatureSpec | None = None) -> Bundle:
    """Verify a bundle and return it.

    Args:
        path: the bundle directory.
        expected_spec: if given, the bundle's feature spec must equal it (the device's
            front end), or the bundle is refused.

    Raises:
        BundleError: not a directory; manifest missing, unreadable or of another schema; a
            listed file missing, of another size or sha256; a model file not listed; the
            spec digest of ``feature_spec.json`` not the manifest's (or not
            ``expected_spec``'s); a model without a threshold. The message names the file.
    """
    root = Path(path)
    if not root.is_dir():
        what = "is not a folder" if root.exists() else "does not exist"
        raise BundleNotFoundError(f"{root}: {what}; expected a bundle folder written by "
                                  "edge-ad export")
    manifest_path = root / MANIFEST
    if not manifest_path.is_file() and not manifest_path.is_symlink():
        raise BundleError(f"{manifest_path}: missing; {root} is not a complete bundle")
    manifest = _read_json(manifest_path)
    check_manifest(manifest, manifest_path)
    files = manifest["files"]
    models = manifest["models"]
    for required in (SPEC_FILE, THRESHOLD_FILE, *models):
        if required not in files:
            raise BundleError(f"{manifest_path}: does not list {required}")
    # Hashes first: nothing is parsed before it is known to be what the export wrote.
    for name, entry in sorted(files.items()):
        file = root / name
        size = _regular_file(file).st_size
        if size != entry.get("bytes"):
            raise BundleError(f"{file}: {size} bytes; {MANIFEST} says {entry.get('bytes')} "
                              "(truncated or changed after export)")
        digest = sha256_file(file)
        if digest != entry.get("sha256"):
            raise BundleError(f"{file}: sha256 {digest[:16]}... does not match {MANIFEST} "
                              f"({str(entry.get('sha256'))[:16]}...): changed after export")
    extra = sorted(p.name for p in root.iterdir()
                   if p.suffix.lower() in MODEL_SUFFIXES and p.name not in files)
    if extra:
        raise BundleError(f"{root}: model file(s) {extra} are not in {MANIFEST}; "
                          "refusing a bundle that mixes exports")
    spec_path = root / SPEC_FILE
    _read_json(spec_path)   # size and depth bounds before the spec parser sees it
    try:
        spec = FeatureSpec.from_json(spec_path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise BundleError(f"{spec_path}: not UTF-8 text ({e.reason})") from None
    except EdgeAdError as e:
        raise BundleError(f"{spec_path}: {e}") from None
    if spec.digest != manifest.get("spec_digest"):
        raise BundleError(f"{spec_path}: spec digest {spec.digest[:16]}... does not match "
                          f"{MANIFEST} ({str(manifest.get('spec_digest'))[:16]}...)")
    if expected_spec is not None and spec.digest != expected_spec.digest:
        diff = {k: (v, getattr(expected_spec, k)) for k, v in dataclasses.asdict(spec).items()
                if getattr(expected_spec, k) != v}
        raise BundleError(f"{spec_path}: the bundle's features differ from this device's "
                          f"(bundle, expected): {diff}")
    threshold_path = root / THRESHOLD_FILE
    raw = _read_json(threshold_path)
    if not isinstance(raw, dict):
        raise BundleError(f"{threshold_path}: expected an object {{model file: threshold}}")
    thresholds = {}
    for name in models:
        if name not in raw:
            raise BundleError(f"{threshold_path}: no threshold for {name}")
        try:
            thresholds[name] = Threshold.from_dict(raw[name])
        except EdgeAdError as e:
            raise BundleError(f"{threshold_path}: {name}: {e}") from None
    return Bundle(path=root, spec=spec, manifest=manifest, thresholds=thresholds)


# --- writing -------------------------------------------------------------------------------
def _write_file(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    delay = os.environ.get(WRITE_DELAY_ENV)
    if delay:
        time.sleep(float(delay))


def _json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n").encode()


def check_writable(path: str | os.PathLike, *, expected: str = "a writable folder") -> None:
    """Refuse early an output ``path`` that cannot be created: its nearest existing folder
    is read-only, not writable or not a real folder (``/proc``).

    Outputs are written into a temporary folder beside ``path`` and renamed at the end, so
    this probes exactly that: a temporary folder made and removed in the nearest existing
    ancestor. Nothing is left behind. ``os.access`` alone is not enough: it says yes to root
    on any folder that is not on a read-only mount.

    Raises:
        EdgeAdError: naming ``path`` and why it cannot be written.
    """
    path = Path(path).absolute()
    if path.exists() and not path.is_dir():
        raise EdgeAdError(f"{path}: exists and is not a folder; expected {expected}")
    base = path if path.is_dir() else path.parent
    while not base.exists() and base != base.parent:
        base = base.parent
    if not base.is_dir():
        raise EdgeAdError(f"{path}: {base} is not a folder; expected {expected}")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".edge-ad-probe.", dir=base))
    except OSError as e:
        raise EdgeAdError(f"{path}: cannot write in {base} ({e.strerror}); expected {expected}") from None


def check_target(path: str | os.PathLike) -> Path:
    """Refuse early a target that exists but is not a bundle (never replace other data),
    or whose folder cannot be written.

    An empty directory or an earlier bundle (it has ``manifest.json``) may be replaced.
    """
    path = Path(path)
    if path.exists() or path.is_symlink():
        if not path.is_dir() or path.is_symlink():
            raise BundleError(f"{path}: exists and is not a directory; refusing to replace it")
        if any(path.iterdir()) and not (path / MANIFEST).is_file():
            raise BundleError(f"{path}: exists, is not empty and is not a bundle (no "
                              f"{MANIFEST}); refusing to replace it")
    check_writable(path, expected="a writable folder for the bundle (--out)")
    return path


def write_bundle(path: str | os.PathLike, *, models: Mapping[str, bytes], spec: FeatureSpec,
                 thresholds: Mapping[str, Threshold], info: Mapping[str, Any] | None = None,
                 extra_files: Mapping[str, bytes] | None = None) -> Bundle:
    """Write a bundle atomically and return it, verified by :func:`load_bundle`.

    Args:
        path: the bundle directory; an earlier bundle there is replaced only once the new
            one is complete on disk.
        models: ``{file name: model bytes}``, names from :data:`MODEL_FILES`.
        spec: the feature spec the models were trained on.
        thresholds: ``{file name: Threshold}``, one per model.
        info: more manifest entries (``models`` metadata per file, metrics, gate settings,
            versions, source); ``files``, ``spec_digest``, ``schema_version`` and
            ``created`` are set here.
        extra_files: ``{file name: bytes}`` of other files to carry, hashed like the rest
            (``edge-ad calibrate`` keeps the previous manifest and thresholds this way).

    Raises:
        BundleError: bad names, a threshold missing, or a target that is not a bundle.
    """
    target = check_target(path).absolute()
    known = set(MODEL_FILES.values())
    if not models or set(models) - known:
        raise BundleError(f"model names {sorted(set(models) - known) or '(none)'}; "
                          f"expected some of {sorted(known)}")
    if set(models) != set(thresholds):
        raise BundleError(f"thresholds for {sorted(thresholds)} but models {sorted(models)}; "
                          "expected one threshold per model file")
    info = dict(info or {})
    model_info = {name: dict(info.get("models", {}).get(name, {})) for name in sorted(models)}
    extra = dict(extra_files or {})
    for name in sorted(extra):
        if name in (SPEC_FILE, THRESHOLD_FILE, MANIFEST, *models) or Path(name).name != name \
                or Path(name).suffix.lower() in MODEL_SUFFIXES:
            raise BundleError(f"extra file name {name!r}: expected a plain new file name "
                              "that is not a model, the manifest or a bundle file")

    def fill(tmp: Path) -> None:
        contents: dict[str, bytes] = {
            SPEC_FILE: spec.to_json().encode(),
            THRESHOLD_FILE: _json_bytes({n: thresholds[n].to_dict() for n in sorted(thresholds)}),
        }
        contents.update({name: bytes(models[name]) for name in sorted(models)})
        contents.update({name: bytes(extra[name]) for name in sorted(extra)})
        files = {}
        for name, data in contents.items():
            _write_file(tmp / name, data)
            files[name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
        for name in model_info:
            model_info[name].update(files[name])
        manifest = {
            **info,
            "schema_version": SCHEMA_VERSION,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "edge_ad_version": __version__,
            "spec_digest": spec.digest,
            "files": files,
            "models": model_info,
        }
        # The manifest goes last: a directory with a manifest has all its files.
        _write_file(tmp / MANIFEST, _json_bytes(manifest))

    replace_folder(target, fill)
    return load_bundle(target)
