"""Bundle care: verify everything, roll back, sign, make a signing key pair."""

from __future__ import annotations

import os
from pathlib import Path

from cfnc_edge.bundle import PUBLIC_KEY_ENV, Bundle, rollback
from cfnc_edge.bundle.store import VERSIONS
from cfnc_edge.errors import CfncError


def verify_bundle(bundle: Path | str, public_key: Path | str | None = None) -> list[tuple[str, str]]:
    """Check everything a bundle promises; (check, finding) rows, BundleError on the first failure.

    Schema, format, every checksum, no unlisted file, the signature (when a
    public key is given or configured), ONNX graphs made from these weights.
    """
    from cfnc_edge.runtime.artefacts import ONNX_FILES

    key = public_key or os.environ.get(PUBLIC_KEY_ENV) or None
    b = Bundle.open(bundle, public_key=key)
    files = b.manifest["files"]
    rev = b.manifest.get("revision", {})
    rows = [("manifest", f"schema ok, format {b.manifest['format_version']}, revision {rev.get('number', '-')}"),
            ("files", f"{len(files)} files match their sha256, none unlisted")]
    if key:
        rows.append(("signature", f"valid, by {key}, covers every file"))
    else:
        rows.append(("signature", "present, not checked (pass --public-key)" if b.signed else "not signed"))
    rows.append(("threshold", f"{b.threshold:.4g}" if "threshold" in b.manifest else "none (verdicts are null)"))
    for precision, name in ONNX_FILES.items():
        if b.has(name):
            from cfnc_edge.deploy.export import (
                onnx_path,  # refuses a graph made from other weights
            )

            onnx_path(b, precision)
            rows.append((name, "exported from this bundle's weights"))
    parent = rev.get("parent")
    kept = parent and (b.path / VERSIONS / f"{parent:06d}").is_dir()
    rows.append(("rollback", f"revision {parent} kept" if kept else "no previous version"))
    return rows


def rollback_bundle(bundle: Path | str) -> Bundle:
    """Make the previous version current again."""
    return rollback(bundle)


def sign_bundle(bundle: Path | str, key: Path | str) -> Bundle:
    """Sign every file of the bundle with a PEM EC private key (a new version)."""
    b = Bundle.open(bundle)
    b.sign(Path(key))
    return b


def make_keys(private_key: Path | str, public_key: Path | str) -> None:
    """Write a new EC P-256 key pair in PEM: the private key readable by its owner only."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    private_key, public_key = Path(private_key), Path(public_key)
    for p in (private_key, public_key):
        if p.exists():
            raise CfncError(f"{p} exists: choose another name (keys are never overwritten)")
    key = ec.generate_private_key(ec.SECP256R1())
    private_key.parent.mkdir(parents=True, exist_ok=True)
    public_key.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(private_key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    public_key.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                         serialization.PublicFormat.SubjectPublicKeyInfo))
