"""Scoring candidates on synthetic defects, and `train` with the auto recipe."""

import warnings

import numpy as np

from cfnc_edge.data.defects import synthetic_defects
from cfnc_edge.data.mvtec import MVTecDataset
from cfnc_edge.data.training_set import load_images
from cfnc_edge.model.coarse_to_fine import CoarseToFine, ModelConfig
from cfnc_edge.selection import evaluate
from cfnc_edge.selection.evaluate import score_candidate

TINY = 64


def test_every_scorer_is_scored_on_held_out_models(tiny_data, monkeypatch):
    good = load_images(MVTecDataset(tiny_data).train_images(), TINY, progress=False)
    bad, masks, _ = synthetic_defects(good, seed=0)
    seen = {}
    real = evaluate._bank_distances

    def spy(g, q, paired, seed):
        seen["bank"] = real(g, q, paired, seed)
        return seen["bank"]
    monkeypatch.setattr(evaluate, "_bank_distances", spy)
    model = CoarseToFine(ModelConfig(image_size=TINY, feature_dim=16, ica=False, fca=False, head="combined"))
    rows = score_candidate(model, good, bad, masks)
    assert [r["scorer"] for r in rows] == ["knn", "gaussian", "combined", "combined", "combined"]
    assert [r.get("weight") for r in rows[2:]] == [0.25, 0.5, 0.75]
    for r in rows:
        assert 0 <= r["synthetic_image_auroc"] <= 1 and 0 <= r["synthetic_pro"] <= 1
    k_good, k_bad = seen["bank"]
    assert k_good.min() > 1e-3  # no good patch found itself: its image's rows were left out
    assert np.median(k_bad.max((1, 2))) > np.median(k_good.max((1, 2)))  # the defects stand out


def test_train_auto_records_the_search_and_deploys_its_choice(tiny_data, tmp_path):
    from cfnc_edge.api.training import train

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # 12 images: the threshold's tail warning
        b = train(tiny_data, tmp_path / "b", budget=1.0, progress=False, overrides={"image_size": TINY})
    sel = b.manifest["selection"]
    assert sel["rows"] and sel["rule"].startswith("highest synthetic image AUROC")
    assert {r["candidate"]["name"] for r in sel["rows"]} == {f"lite0@{TINY}"}  # fixed: the user's size
    assert b.manifest["scorer"]["kind"] == sel["scorer"]
    assert b.manifest["model"]["backbone"] == sel["candidate"]["backbone"]
    if sel["scorer"] == "combined":
        assert b.manifest["scorer"]["weight"] == sel["weight"]
    assert b.manifest["timing"]["selection_seconds"] > 0


def test_the_report_lists_every_scored_candidate_and_marks_the_choice():
    from cfnc_edge.report.selection_table import selection_lines

    row = {"candidate": {"name": "lite0@224", "cost": 1.0}, "synthetic_image_auroc": 0.9, "synthetic_pro": 0.8,
           "seconds": 3.0}
    sel = {"candidate": {"name": "lite0@224"}, "scorer": "combined", "weight": 0.75, "rule": "r", "images": 32,
           "defect_families": ["crack"], "seconds": 9.0, "budget": 4.0, "pose_spread_degrees": 0.0,
           "rows": [{**row, "scorer": "knn"}, {**row, "scorer": "combined", "weight": 0.75},
                    {**row, "scorer": "combined", "weight": 0.5}],
           "skipped": [{"name": "lite0@448", "why": "predicted 99 s, 1 s of the budget left"}]}
    text = "\n".join(selection_lines(sel))
    assert text.count("| **lite0@224** | combined | 0.75 |") == 1  # the choice, and only it, in bold
    assert "| lite0@224 | knn |" in text and "| lite0@224 | combined | 0.5 |" in text
    assert "lite0@448 (predicted 99 s" in text and selection_lines(None) == []


def test_the_search_stops_at_its_budget_and_skips_inputs_larger_than_the_frames(tiny_data, monkeypatch):
    """The budget loop alone: scoring replaced by a stand-in that takes a known time."""
    import time

    from cfnc_edge.api import selection

    def stand_in(model, good, bad, masks, gaussian=True, seed=0):
        time.sleep(0.5)
        return [{"scorer": "knn", "synthetic_image_auroc": 0.5, "synthetic_pro": 0.5, "seconds": 0.5}]
    monkeypatch.setattr(selection, "score_candidate", stand_in)
    sel = selection.select(MVTecDataset(tiny_data).train_images(), budget=1.5, log=lambda _m: None)
    why = {s["name"]: s["why"] for s in sel["skipped"]}
    assert [r["candidate"]["name"] for r in sel["rows"]] == ["lite0@224"]  # 1.5 x its time: nothing else fits
    assert "short side is 96 px" in why["lite0@320"] and "short side is 96 px" in why["lite0@448"]  # frames of 96
    assert "predicted" in why["lite2@224"] and "predicted" in why["lite1@224"]
