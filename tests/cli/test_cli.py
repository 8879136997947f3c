import json
import subprocess
import sys

import cv2
import numpy as np


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "cfnc_edge", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=600)


def test_demo_on_a_tiny_setting(tmp_path):
    out = tmp_path / "demo"
    r = cli("demo", "--out", out, "--steps", 2, "--n-train", 8, "--n-per-defect", 2, "--image-size", 64,
            "--batch-size", 4)
    assert r.returncode == 0, r.stderr
    assert "image AUROC" in r.stdout
    report = (out / "report" / "report.md").read_text()
    assert "| **all** |" in report and "![" in report
    metrics = json.loads((out / "report" / "metrics.json").read_text())["metrics"]
    assert 0 <= metrics["image_auroc"] <= 1 and 0 <= metrics["pro"] <= 1
    pngs = list((out / "report" / "examples").glob("*.png"))
    assert pngs and cv2.imread(str(pngs[0])).shape[1] == 3 * 256  # input | ground truth | heatmap
    assert (out / "bundle" / "manifest.json").is_file()


def test_infer_writes_one_json_line_per_image(tiny_bundle, tiny_data, tmp_path):
    folder = tiny_data / "test" / "stain"
    r = cli("infer", folder, "--bundle", tiny_bundle.path, "--out", tmp_path / "heat", "--threshold", 1e9)
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert [line["path"] for line in lines] == [str(p) for p in sorted(folder.glob("*.png"))]
    assert all(line["anomalous"] is False and line["score"] > 0 for line in lines)
    assert all(cv2.imread(line["heatmap"]) is not None for line in lines)


def test_eval_prints_metrics(tiny_bundle, tiny_data):
    r = cli("eval", tiny_data, "--bundle", tiny_bundle.path)
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert set(result["per_defect"]) == {"dent", "missing", "scratch", "stain"}
    assert np.isfinite(result["metrics"]["pixel_auroc"])


def test_bad_input_gives_a_one_line_error_not_a_traceback(tmp_path, tiny_bundle, tiny_data):
    r = cli("infer", tmp_path / "missing.png", "--bundle", tiny_bundle.path)
    assert r.returncode == 2 and "does not exist" in r.stderr and "Traceback" not in r.stderr
    r = cli("eval", tmp_path, "--bundle", tmp_path)
    assert r.returncode == 2 and "not a model bundle" in r.stderr and "Traceback" not in r.stderr
    (tmp_path / "train" / "good").mkdir(parents=True)
    r = cli("train", tmp_path, "--out", tmp_path / "b")
    assert r.returncode == 2 and "holds no images" in r.stderr
    r = cli("train", tiny_data, "--out", tmp_path / "b", "--backbone", "resnet18", "--weights", tmp_path / "no.pth")
    assert r.returncode == 2 and "no.pth" in r.stderr
