"""infer and eval with bad files among good ones: skipped, reported, exit 1."""

import json
import shutil
import subprocess
import sys

import cv2
import numpy as np
from typer.testing import CliRunner

from cfnc_edge import api
from cfnc_edge.cli import app


def test_infer_skips_and_reports_unreadable_images(tiny_bundle, tiny_data, tmp_path):
    folder = tmp_path / "imgs"
    shutil.copytree(tiny_data / "test" / "stain", folder)
    (folder / "0_truncated.png").write_bytes((folder / "000.png").read_bytes()[:100])
    (folder / "1_text.png").write_text("hello")
    n_good = len(list((tiny_data / "test" / "stain").glob("*.png")))
    # batch 8 with the bad files first: before, not a single line was written
    r = subprocess.run([sys.executable, "-m", "cfnc_edge", "infer", folder, "--bundle", tiny_bundle.path],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 1, r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert len(lines) == n_good + 2
    assert sum("error" in x for x in lines) == 2 and sum("score" in x for x in lines) == n_good
    assert 'summary: {"images": %d, "skipped": 2}' % (n_good + 2) in r.stderr
    assert "warning: 2 unreadable image(s) skipped" in r.stderr and "Traceback" not in r.stderr

    result = CliRunner().invoke(app, ["infer", str(folder), "--bundle", str(tiny_bundle.path), "--on-error", "fail"])
    assert "cannot read image" in str(result.exception)


def test_heatmap_names_are_unique_per_input_path(tiny_bundle, tiny_data, tmp_path):
    """good/000.png, dent/000.png and stain/000.png used to share one 000_heatmap.png."""
    inputs = [tiny_data / "test" / d / "000.png" for d in ("good", "dent", "stain")]
    lines = list(api.infer_paths(inputs, tiny_bundle.path, tmp_path / "out", api.InspectOptions(threshold=1.0)))
    heatmaps = [line["heatmap"] for line in lines]
    assert len(set(heatmaps)) == 3 and all(cv2.imread(h) is not None for h in heatmaps)
    assert all(str(tmp_path / "out") in h for h in heatmaps)
    assert sorted((tmp_path / "out").rglob("*.png")) == sorted(map(type(tmp_path), heatmaps))


def test_eval_skips_bad_files_before_computing_and_exits_1(tiny_bundle, tiny_data, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    (data / "test" / "good" / "000.png").write_bytes(b"broken")
    mask = data / "ground_truth" / "dent" / "000_mask.png"
    cv2.imwrite(str(mask), np.zeros((5, 5), np.uint8))
    result = CliRunner().invoke(app, ["eval", str(data), "--bundle", str(tiny_bundle.path)])
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout[:result.stdout.rindex("}") + 1])
    assert len(report["skipped"]) == 2 and "is 5x5 but its image is" in json.dumps(report["skipped"])
    assert "warning: 2 unreadable image(s) skipped" in result.stderr
    r = CliRunner().invoke(app, ["eval", str(data), "--bundle", str(tiny_bundle.path), "--on-error", "fail"])
    assert "2 of" in str(r.exception) and "cannot be used" in str(r.exception)
