"""eval and infer on a bundle that is not exported: `auto` falls back to PyTorch,
and says in one line how to make it faster (export once)."""

import subprocess
import sys

from cfnc_edge.api import InspectOptions, evaluate, infer_paths


def test_auto_on_an_unexported_bundle_says_to_export(tiny_bundle, tiny_data):
    said = []
    r = evaluate(tiny_bundle, tiny_data, inspection=InspectOptions(backend="auto"), progress=False, log=said.append)
    assert r.metrics["image_auroc"] is not None
    assert len(said) == 1 and f"cfnc-edge export --bundle {tiny_bundle.path}" in said[0] and "\n" not in said[0]
    frames = sorted((tiny_data / "test" / "good").glob("*.png"))[:1]
    said.clear()
    assert len(list(infer_paths(frames, tiny_bundle.path, log=said.append))) == 1
    assert len(said) == 1 and "not exported" in said[0]


def test_no_hint_when_the_backend_was_named_or_the_bundle_is_exported(tiny_bundle, exported, tiny_data):
    said = []
    evaluate(tiny_bundle, tiny_data, inspection=InspectOptions(backend="torch"), progress=False, log=said.append)  # the user chose it
    evaluate(exported[0], tiny_data, inspection=InspectOptions(backend="auto"), progress=False, log=said.append)
    assert said == []


def test_the_cli_prints_the_hint_on_stderr_and_keeps_stdout_json(tiny_bundle, tiny_data):
    import json

    r = subprocess.run([sys.executable, "-m", "cfnc_edge", "eval", str(tiny_data), "--bundle", str(tiny_bundle.path)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "image_auroc" in json.loads(r.stdout)["metrics"]
    assert f"`cfnc-edge export --bundle {tiny_bundle.path}`" in r.stderr
