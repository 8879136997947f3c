"""The deployable files of a bundle and how the runtime finds them.

The export side writes these files; the runtime side only reads them, and
with ONNX Runtime alone: nothing here imports torch or onnx, so an edge
device needs neither to run an exported bundle.
"""

from __future__ import annotations

from pathlib import Path

from cfnc_edge.bundle import BANK, WEIGHTS, Bundle
from cfnc_edge.errors import BundleError, CfncError

ONNX_FILES = {"fp32": "model.onnx", "fp16": "model-fp16.onnx", "int8": "model-int8.onnx"}
# metadata key of every exported graph: the sha256 of the weights it was made from
WEIGHTS_KEY = "cfnc.weights_sha256"
# ... and, for a graph that scores against the memory bank inside it, the bank's
BANK_KEY = "cfnc.bank_sha256"


def onnx_file(bundle: Bundle, precision: str) -> Path:
    """The bundle's (checksum-verified) ONNX file for a precision."""
    if precision not in ONNX_FILES:
        raise CfncError(f"unknown precision {precision!r}; choose from {', '.join(ONNX_FILES)}")
    name = ONNX_FILES[precision]
    if not bundle.has(name):
        step = "cfnc-edge calibrate" if precision == "int8" else "cfnc-edge export"
        raise BundleError(f"{bundle.path} has no {name}: run `{step} --bundle {bundle.path}` first")
    return bundle.verify(name)


def check_exported_from(bundle: Bundle, metadata: dict[str, str], path: Path) -> None:
    """Refuse a graph exported from other weights (or another memory bank) than the bundle's."""
    if metadata.get(WEIGHTS_KEY) != bundle.manifest["files"][WEIGHTS]:
        raise BundleError(f"{path} was exported from other weights than this bundle's: export again")
    if BANK_KEY in metadata and metadata[BANK_KEY] != bundle.manifest["files"].get(BANK):
        raise BundleError(f"{path} holds another memory bank than this bundle's: export again")
