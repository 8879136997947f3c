"""The `Bundle` class: one bundle folder opened for reading (schema,
checksums, signature checked) and written in transactions; `rollback` to the
previous version. The layout and its guarantees: `cfnc_edge.bundle`."""

from __future__ import annotations

import copy
import functools
import hashlib
import inspect
import json
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file as load_np
from safetensors.numpy import save as save_np

from cfnc_edge import __version__
from cfnc_edge.bundle import schema, signature, store
from cfnc_edge.bundle.files import atomic_write, sha256
from cfnc_edge.bundle.signature import PUBLIC_KEY_ENV, SIGNATURE
from cfnc_edge.errors import BundleError

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
WEIGHTS = "weights.safetensors"
GAUSSIAN = "gaussian.safetensors"
BANK = "bank.safetensors"  # the memory bank of good patches (scorer "knn", instead of the Gaussian)
SCORER_FILES = {"gaussian": GAUSSIAN, "knn": BANK}  # "combined" holds both (scoring/loading.load_scorer)
# a reader retries when a writer committed (and cleaned up) while it was opening
_OPEN_ATTEMPTS = 5


def package_versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"cfnc-edge": __version__}
    for name in ("torch", "numpy", "onnx", "onnxruntime", "opencv-python-headless", "tensorrt", "cupy"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return out


def holds_lock(param: str):
    """Decorator: hold the writer lock of the bundle folder passed as argument
    `param` for the whole call, so a second writer is refused at its start
    (not after an hour of training). The lock is re-entrant: the call's own
    transactions take it again."""
    def decorate(fn):
        sig = inspect.signature(fn)

        @functools.wraps(fn)
        def locked(*args, **kwargs):
            with store.writer_lock(Path(sig.bind(*args, **kwargs).arguments[param])):
                return fn(*args, **kwargs)
        return locked
    return decorate


@dataclass
class Bundle:
    """A bundle folder (`path`) and the state read from it: `manifest`, and
    `dir`, the version folder its files are read from (resolved once on open,
    so a concurrent writer never mixes states under a reader)."""

    path: Path
    manifest: dict = field(default_factory=dict)
    dir: Path | None = None
    _staging: Path | None = field(default=None, repr=False, compare=False)

    def __post_init__(self):
        self.path = Path(self.path)

    # ---- reading -------------------------------------------------------
    @classmethod
    def open(cls, path: Path | str, verify: bool = True, public_key: Path | str | None = None) -> "Bundle":
        """Open and check a bundle: schema, checksums, no unlisted files and, when
        `public_key` (or $CFNC_EDGE_PUBLIC_KEY) is set, a valid signature by it."""
        path = Path(path)
        for attempt in range(_OPEN_ATTEMPTS):
            folder = store.resolve(path)
            try:
                return cls._load(path, folder, verify, public_key or os.environ.get(PUBLIC_KEY_ENV) or None)
            except (BundleError, OSError) as exc:
                if attempt + 1 < _OPEN_ATTEMPTS and store.resolve(path) != folder:
                    continue  # a writer committed meanwhile: read the new state
                if isinstance(exc, OSError):
                    raise BundleError(f"{path}: cannot read the bundle ({exc})") from None
                raise
        raise AssertionError("unreachable")

    @classmethod
    def _load(cls, path: Path, folder: Path, verify: bool, public_key) -> "Bundle":
        mpath = folder / MANIFEST
        if not mpath.is_file():
            raise BundleError(f"{path} is not a model bundle: no {MANIFEST} (train one with `cfnc-edge train`)")
        manifest = schema.parse(mpath.read_text(), str(path / MANIFEST))
        if manifest["format_version"] != FORMAT_VERSION:
            raise BundleError(f"{path}: bundle format {manifest['format_version']} is not supported "
                              f"(this cfnc-edge reads format {FORMAT_VERSION}); retrain or re-export it")
        bundle = cls(path, manifest, folder)
        if verify:
            bundle.verify_files()
        if public_key is not None:
            signature.verify(folder, Path(public_key), str(path))
        return bundle

    def verify(self, name: str) -> Path:
        """The path of a listed file, after checking it against its checksum."""
        expected = self.manifest.get("files", {}).get(name)
        if expected is None:
            raise BundleError(f"{self.path}: {name} is not part of this bundle")
        p = self.dir / name
        if p.is_symlink():
            raise BundleError(f"{self.path}: {name} is a link, not a file of the bundle; re-create the bundle")
        if not p.is_file():
            raise BundleError(f"{self.path}: {name} is listed in the manifest but missing")
        if sha256(p) != expected:
            raise BundleError(f"{self.path}: {name} does not match its checksum in {MANIFEST} "
                              "(modified or corrupted); re-create it from a trusted copy")
        return p

    def verify_files(self) -> None:
        """Every listed file against its checksum, and no file that is not listed."""
        listed = self.manifest.get("files", {})
        for name in listed:
            self.verify(name)
        if self.dir == self.path:
            return  # a bundle written before versioning shares its folder with other things
        for p in sorted(self.dir.rglob("*")):
            rel = p.relative_to(self.dir).as_posix()
            if (p.is_file() or p.is_symlink()) and rel not in listed and rel not in (MANIFEST, SIGNATURE):
                raise BundleError(f"{self.path}: {rel} is in the bundle but not in its manifest (added after it "
                                  "was written); remove it or re-create the bundle")

    @property
    def signed(self) -> bool:
        return self.dir is not None and (self.dir / SIGNATURE).is_file()

    def has(self, name: str) -> bool:
        return name in self.manifest.get("files", {})

    def tensors(self, name: str) -> dict[str, np.ndarray]:
        path = self.verify(name)
        try:
            return load_np(str(path))
        except SafetensorError as exc:  # its checksum matched: the manifest was re-hashed over a bad file
            raise BundleError(f"{self.path}: {name} is not a safetensors file ({exc}); re-create the bundle") from None

    @property
    def model_config(self) -> dict:
        return self.manifest["model"]

    @property
    def scorer(self) -> str:
        """Which scorer the bundle holds: "gaussian" (bundles from before the choice), "knn" or "combined"."""
        return self.manifest.get("scorer", {}).get("kind", "gaussian")

    def scorer_tensors(self) -> dict[str, np.ndarray]:
        return self.tensors(SCORER_FILES[self.scorer])

    @property
    def threshold(self) -> float:
        return float(self.manifest["threshold"]["value"])

    # ---- writing -------------------------------------------------------
    @contextmanager
    def transaction(self, signing_key: Path | None = None):
        """Stage every change made inside the block; commit them as one new version
        (manifest last, then one atomic switch) when it ends, discard them if it
        raises. Holds the writer lock; nested transactions join the outer one.
        Inside, this object reads its own staged state (`dir` is the staging folder).
        `signing_key`: sign the new version with this PEM private key."""
        if self._staging is not None:
            yield self
            return
        with store.writer_lock(self.path):
            moved = store.repair(self.path)
            if moved is not None and self.dir == Path(os.path.realpath(self.path)) / store.CURRENT:
                self.dir = moved
            if self.dir is not None and self.dir != store.resolve(self.path):
                raise BundleError(f"{self.path} was changed by another writer since it was opened: "
                                  "run the command again")
            names = list(self.manifest.get("files", {})) if self.dir is not None else []
            flat = _flat_files(self.path)
            saved = (self.dir, copy.deepcopy(self.manifest))
            self.dir = self._staging = store.start(self.path, saved[0], names)
            committed = False
            try:
                yield self
                parent = self._commit(signing_key, flat)
                committed = True
            finally:
                if not committed:
                    store.discard(self._staging)
                    self.dir, self.manifest = saved
                self._staging = None
            store.collect(self.path, keep={self.dir.name} | ({f"{parent:06d}"} if parent else set()))

    def _commit(self, signing_key: Path | None, flat: list[str]) -> int | None:
        """Write the manifest (and signature), switch to the new version; return its parent's number."""
        staging, root = self._staging, self.path
        current = store.resolve(root)
        parent = store.version_number(current) if current != root else None
        number = store.next_number(root)
        self.manifest["format_version"] = FORMAT_VERSION
        self.manifest["versions"] = package_versions()
        self.manifest["revision"] = {"number": number, "parent": parent,
                                     "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        # NaN (a diverged loss, an undefined metric) becomes null; where a number
        # is required (the threshold) the schema then refuses the commit
        self.manifest = schema.json_safe(self.manifest)
        schema.validate(self.manifest, f"new manifest of {root}", fix="nothing was written, the bundle is unchanged")
        atomic_write(staging / MANIFEST, schema.dumps(self.manifest, indent=2, sort_keys=True).encode())
        if signing_key is not None:
            signature.sign(staging, Path(signing_key))
        self.dir = store.commit(root, staging, number, [*self.manifest["files"], MANIFEST], flat)
        return parent

    def write(self, files: dict[str, bytes], **manifest_updates) -> None:
        """Write files and manifest entries as one transaction (or into the open one)."""
        with self.transaction():
            listed = self.manifest.setdefault("files", {})
            for name, data in files.items():
                atomic_write(self.dir / name, data)
                listed[name] = hashlib.sha256(data).hexdigest()
            self.manifest.update(manifest_updates)

    def remove(self, names) -> None:
        """Drop files from the bundle as one transaction (or in the open one)."""
        with self.transaction():
            listed = self.manifest.setdefault("files", {})
            for name in list(names):
                listed.pop(name, None)
                (self.dir / name).unlink(missing_ok=True)

    @staticmethod
    def tensor_bytes(tensors: dict[str, np.ndarray]) -> bytes:
        return save_np({k: np.ascontiguousarray(v) for k, v in tensors.items()})

    def write_manifest(self) -> None:
        """Commit manifest changes made in place (joins an open transaction)."""
        with self.transaction():
            pass

    def sign(self, private_key: Path) -> None:
        """Sign the current state as a new version: every file, manifest included."""
        with self.transaction(signing_key=private_key):
            pass


def _flat_files(root: Path) -> list[str]:
    """Files of a bundle written before versioning (its manifest is a plain file
    in the root), to remove from the root once a versioned state replaces them."""
    mpath = root / MANIFEST
    if mpath.is_symlink() or not mpath.is_file():
        return []
    try:
        names = list(json.loads(mpath.read_text()).get("files", {}))
    except (ValueError, AttributeError):
        return []
    return [n for n in names if re.match(schema.FILE_NAME, n) and ".." not in n.split("/")]


def rollback(path: Path | str) -> Bundle:
    """Make the parent of the current version current again (one atomic switch)."""
    path = Path(path)
    with store.writer_lock(path):
        bundle = Bundle.open(path)
        parent = bundle.manifest.get("revision", {}).get("parent")
        target = path / store.VERSIONS / f"{parent:06d}" if parent else None
        if target is None or not target.is_dir():
            raise BundleError(f"{path} has no previous version to roll back to")
        Bundle._load(path, target, True, None)  # refuse to switch to a damaged version
        store.set_current(path, target)
    return Bundle.open(path)
