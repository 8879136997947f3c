"""The model bundle: the one contract between every stage.

    manifest.json          config, threshold, package versions, sha256 of every file
    weights.safetensors    ICA + backbone + FCA + projection
    gaussian.safetensors   per-position mean and packed whitening factor (scorer "gaussian")
    bank.safetensors       memory bank of good patches (scorer "knn", instead of the Gaussian)
    (model*.onnx, engines/ are added by later stages through `add_file`)

No pickle: tensors are safetensors, everything else JSON. Every file is
written atomically, and the manifest (which holds the checksums) last, so an
interrupted write leaves either the old bundle or a bundle whose checksums
fail loudly, never a silently half-written one.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file as load_np
from safetensors.numpy import save as save_np

from cfnc_edge import __version__
from cfnc_edge.errors import BundleError

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
WEIGHTS = "weights.safetensors"
GAUSSIAN = "gaussian.safetensors"
BANK = "bank.safetensors"
SCORER_FILES = {"gaussian": GAUSSIAN, "knn": BANK}


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def atomic_write(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def package_versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"cfnc-edge": __version__}
    for name in ("torch", "numpy", "onnx", "onnxruntime", "opencv-python-headless", "tensorrt", "cupy"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return out


@dataclass
class Bundle:
    path: Path
    manifest: dict = field(default_factory=dict)

    # ---- reading -------------------------------------------------------
    @classmethod
    def open(cls, path: Path | str, verify: bool = True) -> "Bundle":
        path = Path(path)
        mpath = path / MANIFEST
        if not mpath.is_file():
            raise BundleError(f"{path} is not a model bundle: no {MANIFEST} (train one with `cfnc-edge train`)")
        try:
            manifest = json.loads(mpath.read_text())
        except json.JSONDecodeError as exc:
            raise BundleError(f"{mpath} is not valid JSON: {exc}") from exc
        if manifest.get("format_version") != FORMAT_VERSION:
            raise BundleError(f"{path}: bundle format {manifest.get('format_version')} is not supported "
                              f"(this cfnc-edge reads format {FORMAT_VERSION}); retrain or re-export it")
        bundle = cls(path, manifest)
        if verify:
            for name in manifest.get("files", {}):
                bundle.verify(name)
        return bundle

    def verify(self, name: str) -> Path:
        p = self.path / name
        expected = self.manifest.get("files", {}).get(name)
        if expected is None:
            raise BundleError(f"{self.path}: {name} is not part of this bundle")
        if not p.is_file():
            raise BundleError(f"{self.path}: {name} is listed in the manifest but missing")
        if sha256(p) != expected:
            raise BundleError(f"{self.path}: {name} does not match its checksum in {MANIFEST} "
                              "(modified or corrupted); re-create it from a trusted copy")
        return p

    def has(self, name: str) -> bool:
        return name in self.manifest.get("files", {})

    def tensors(self, name: str) -> dict[str, np.ndarray]:
        return load_np(str(self.verify(name)))

    @property
    def model_config(self) -> dict:
        return self.manifest["model"]

    @property
    def scorer(self) -> str:
        """Which scorer the bundle holds: "gaussian" (bundles from before the choice) or "knn"."""
        return self.manifest.get("scorer", {}).get("kind", "gaussian")

    def scorer_tensors(self) -> dict[str, np.ndarray]:
        return self.tensors(SCORER_FILES[self.scorer])

    @property
    def threshold(self) -> float:
        return float(self.manifest["threshold"]["value"])

    # ---- writing -------------------------------------------------------
    def write(self, files: dict[str, bytes], **manifest_updates) -> None:
        """Atomically write files, then commit the manifest with their checksums.

        Entries being replaced are dropped from the manifest first, so a crash
        mid-way leaves them unlisted (refused on load), never mismatched with
        the rest of the bundle.
        """
        listed = self.manifest.setdefault("files", {})
        if any(listed.pop(name, None) for name in files) and (self.path / MANIFEST).is_file():
            self.write_manifest()
        for name, data in files.items():
            atomic_write(self.path / name, data)
        for name in files:
            listed[name] = sha256(self.path / name)
        self.manifest.update(manifest_updates)
        self.write_manifest()

    @staticmethod
    def tensor_bytes(tensors: dict[str, np.ndarray]) -> bytes:
        return save_np({k: np.ascontiguousarray(v) for k, v in tensors.items()})

    def write_manifest(self) -> None:
        self.manifest["format_version"] = FORMAT_VERSION
        self.manifest["versions"] = package_versions()
        atomic_write(self.path / MANIFEST, json.dumps(self.manifest, indent=2, sort_keys=True).encode())
