"""Signed bundles, with the OpenSSF `model-signing` library.

The signature (a Sigstore bundle, `signature.sig` inside the version folder)
covers every file of that version, manifest included, by name and sha256:
a changed, removed or added file fails verification. Keys are EC key pairs
in PEM (P-256/384/521); signing and verifying work offline.
"""

from __future__ import annotations

import re
from pathlib import Path

from cfnc_edge.errors import BundleError

SIGNATURE = "signature.sig"
PUBLIC_KEY_ENV = "CFNC_EDGE_PUBLIC_KEY"


def _hashing(folder: Path):
    from model_signing import hashing

    return hashing.Config().set_ignored_paths(paths=[folder / SIGNATURE])


def sign(folder: Path, private_key: Path) -> None:
    """Write `folder`/signature.sig over every other file of `folder`."""
    from model_signing import signing

    folder = folder.resolve()
    if not Path(private_key).is_file():
        raise BundleError(f"signing key {private_key} does not exist: pass a PEM private key "
                          "(`cfnc-edge bundle keygen` makes a pair)")
    try:
        (signing.Config().set_hashing_config(_hashing(folder))
         .use_elliptic_key_signer(private_key=private_key).sign(folder, folder / SIGNATURE))
    except ValueError as exc:
        raise BundleError(f"cannot sign with {private_key}: {exc}; pass an EC private key in PEM") from None


def verify(folder: Path, public_key: Path, name: str) -> None:
    """BundleError unless `folder` carries a valid signature by `public_key` over exactly its files."""
    from model_signing import verifying

    folder = folder.resolve()
    if not (folder / SIGNATURE).is_file():
        raise BundleError(f"{name} is not signed, but a signature is required (public key {public_key}): "
                          f"sign it with `cfnc-edge sign --bundle {name} --key KEY`")
    if not Path(public_key).is_file():
        raise BundleError(f"public key {public_key} does not exist: pass the PEM public key of the signer")
    try:
        (verifying.Config().set_hashing_config(_hashing(folder))
         .use_elliptic_key_verifier(public_key=public_key).verify(folder, folder / SIGNATURE))
    except Exception as exc:  # the library raises ValueError, and others on a forged signature file
        raise BundleError(f"{name}: signature check failed: {_summary(exc)}; re-create the bundle from a "
                          "trusted copy, or sign it again if the change is yours") from None


def _summary(exc: Exception) -> str:
    text = str(exc)
    # the file name is quoted inside a repr of a list, so its quotes come
    # escaped or not depending on the digest bytes printed beside it
    found = [f"{m} changed" for m in re.findall(r"Hash mismatch for \\*'([^'\\]+)\\*'", text)]
    for kind, word in (("Extra files found", "added"), ("Missing files", "removed")):
        for m in re.findall(kind + r" in model '[^']*': ([^\"\]]+)", text):
            found.append(f"{m} {word}")
    if "Key mismatch" in text:
        found.append("signed with another key")
    first = text.splitlines()[0][:200] if text else type(exc).__name__
    return ", ".join(found) if found else f"invalid signature ({first})"
