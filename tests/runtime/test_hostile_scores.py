"""A score that is not a number must never pass a part."""

import json
import math
import shutil

import numpy as np
from safetensors.numpy import load_file, save_file

from cfnc_edge.bundle import GAUSSIAN, Bundle, sha256
from cfnc_edge.runtime.inspector import Inspector


def test_a_nan_score_is_anomalous(tiny_bundle, tmp_path):
    # a Gaussian whose mean is NaN, re-listed with its new checksum (an unsigned
    # bundle cannot tell): every score is NaN, and `NaN > threshold` passed every part
    dest = tmp_path / "b"
    shutil.copytree(tiny_bundle.path, dest, symlinks=True)
    b = Bundle.open(dest)
    tensors = load_file(str(b.dir / GAUSSIAN))
    tensors["mean"] = np.full_like(tensors["mean"], np.nan)
    save_file(tensors, str(b.dir / GAUSSIAN))
    b.manifest["files"][GAUSSIAN] = sha256(b.dir / GAUSSIAN)
    (b.dir / "manifest.json").write_text(json.dumps(b.manifest))
    [r] = Inspector(dest, backend="torch")([np.full((96, 96, 3), 128, np.uint8)])
    assert math.isnan(r.score)
    assert r.anomalous is True
