"""The model bundle: the one contract between every stage.

    manifest.json          config, threshold, package versions, sha256 of every file
    weights.safetensors    ICA + backbone + FCA + projection
    gaussian.safetensors   per-position mean and packed whitening factor
    (model*.onnx, engines/ are added by later stages through `write`)
    signature.sig          optional: a signature over all of the above (`cfnc-edge sign`)

No pickle: tensors are safetensors, everything else strict JSON. Every write
is a transaction (`bundle.transaction()`, or one `write` call): the complete
new state is built aside and made current in one atomic step (see
`cfnc_edge.bundle.store`), so a reader sees the old bundle or the new one,
never a mix, whatever is interrupted and whenever. The manifest is checked
against a schema on every load (`cfnc_edge.bundle.schema`), every file against
its checksum, and, when a public key is configured, the signature.
"""

from cfnc_edge.bundle.bundle import (
    BANK,
    FORMAT_VERSION,
    GAUSSIAN,
    MANIFEST,
    SCORER_FILES,
    WEIGHTS,
    Bundle,
    holds_lock,
    package_versions,
    rollback,
)
from cfnc_edge.bundle.files import atomic_write, sha256
from cfnc_edge.bundle.signature import PUBLIC_KEY_ENV

__all__ = ["BANK", "Bundle", "FORMAT_VERSION", "GAUSSIAN", "SCORER_FILES", "MANIFEST", "PUBLIC_KEY_ENV", "WEIGHTS", "atomic_write",
           "holds_lock", "package_versions", "rollback", "sha256"]
