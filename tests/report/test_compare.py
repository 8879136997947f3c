"""`compare`: the recommendation rule, and the command end to end on tiny data."""

import json
import math

from typer.testing import CliRunner

from cfnc_edge.report.compare import recommend


def row(scorer, auroc, pro, ms):
    return {"scorer": scorer, "image_auroc": auroc, "pro": pro, "p50_ms": ms}


def test_rule_accuracy_first_then_pro_then_latency():
    g, k = row("gaussian", 0.90, 0.70, 10.0), row("knn", 0.95, 0.60, 50.0)
    assert recommend([g, k])[0] is k  # image AUROC decides beyond half a point
    g, k = row("gaussian", 0.950, 0.70, 10.0), row("knn", 0.953, 0.60, 5.0)
    chosen, reason = recommend([g, k])
    assert chosen is g and reason.startswith("PRO")  # AUROC within the margin: PRO decides
    g, k = row("gaussian", 0.950, math.nan, 10.0), row("knn", 0.951, math.nan, 5.0)
    chosen, reason = recommend([g, k])
    assert chosen is k and reason.startswith("latency")  # no masks: latency decides


def test_compare_command_writes_both_bundles_and_a_recommendation(tiny_data, tmp_path):
    from cfnc_edge.cli.app import app
    from tests.conftest import TINY

    out = tmp_path / "cmp"
    res = CliRunner().invoke(app, ["compare", str(tiny_data), "--out", str(out), "--image-size", str(TINY),
                                   "--steps", "0", "--no-ica", "--no-fca", "--no-noncontrastive"])
    assert res.exit_code == 0, res.output
    rec = json.loads(res.stdout[res.stdout.index("{"):])
    assert rec["recommended"] in ("gaussian", "knn", "combined")
    assert all(f"| {s} |" in (out / "compare.md").read_text() for s in ("gaussian", "knn", "combined"))
    assert (out / "gaussian" / "manifest.json").is_file() and (out / "knn" / "bank.safetensors").is_file()
    assert f"Deploy `{rec['recommended']}`" in (out / "compare.md").read_text()
