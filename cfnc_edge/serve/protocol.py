"""What a served model takes and returns: shared by the server and the client.

One request holds a batch of BGR uint8 frames of one size, (N, H, W, 3).
Triton's dynamic batcher merges only requests whose frames have the same
size, so frames of several sizes (cameras of different resolutions) travel
in separate requests and are batched per size.
"""

from __future__ import annotations

DEFAULT_MODEL = "cfnc"  # the model of a bundle served without a name (`--bundle PATH`)

FRAMES = "frames"
SCORE = "score"  # raw distance (the map's maximum), float64
NORMALIZED = "normalized_score"  # threshold at 0.5; NaN without a threshold
ANOMALOUS = "anomalous"  # bool; false without a threshold
THRESHOLD = "threshold"  # float64; NaN when the bundle has none
BUNDLE_ID = "bundle_id"  # sha256 of the bundle's manifest.json, as bytes
MAP = "map"  # float32 anomaly map at model resolution; sent only when requested

SCALARS = (SCORE, NORMALIZED, ANOMALOUS, THRESHOLD, BUNDLE_ID)
