import numpy as np

from cfnc_edge.report.evaluate import evaluate
from cfnc_edge.runtime.inspector import Inspector


def test_eval_reports_normalised_scores_and_the_good_image_false_alarm_rate(tiny_bundle, tiny_data, tmp_path):
    r = evaluate(Inspector(tiny_bundle, "torch"), tiny_data, tmp_path / "report", progress=False)
    thr = r.threshold
    good = [i for i in r.images if i["defect"] == "good"]
    assert thr["good_images"] == len(good) == 4
    assert thr["good_flagged"] == sum(i["anomalous"] for i in good)
    assert thr["false_positive_rate"] == thr["good_flagged"] / 4
    assert thr["target_fpr"] == 0.01 and "expected_fpr" in thr  # what training promised, beside what happened
    for i in r.images:
        assert np.isclose(i["normalized_score"], min(1.0, 0.5 * i["score"] / thr["value"]))
        assert i["anomalous"] == (i["normalized_score"] > 0.5)



def test_the_report_leads_with_what_the_threshold_does_and_the_oracle(tiny_bundle, tiny_data, tmp_path):
    import json

    import cv2

    r = evaluate(Inspector(tiny_bundle, "torch"), tiny_data, tmp_path / "report", progress=False)
    op = r.operating_point
    good = [i for i in r.images if i["defect"] == "good"]
    bad = [i for i in r.images if i["defect"] != "good"]
    assert op["threshold"] == r.threshold["value"] and (op["good_images"], op["defective_images"]) == (4, len(bad))
    assert op["good_flagged"] == sum(i["anomalous"] for i in good) / 4  # what the Inspector decided
    assert op["defects_caught"] == sum(i["anomalous"] for i in bad) / len(bad)
    assert op["defects_caught"] <= op["oracle_caught"] and op["oracle_good_flagged"] <= op["good_flagged"]
    assert json.loads((tmp_path / "report" / "metrics.json").read_text())["operating_point"] == op
    md = (tmp_path / "report" / "report.md").read_text()
    first = md.split("\n## ")[1]  # the first section, before the AUROC table
    assert first.startswith("At the decision threshold") and "image AUROC" not in first
    assert md.index("## At the decision threshold") < md.index("| image AUROC")
    caught = sum(i["anomalous"] for i in bad)
    assert f"good parts flagged: {r.threshold['good_flagged']} of 4 ({100 * op['good_flagged']:.1f}%)" in first
    assert f"defects caught: {caught} of {len(bad)} ({100 * op['defects_caught']:.1f}%)" in first
    assert f"{100 * op['oracle_caught']:.1f}% caught" in first and "oracle" in first
    assert "![ROC" in first and cv2.imread(str(tmp_path / "report" / "roc.png")) is not None
    for e in r.missed + r.false_alarms:  # the threshold's mistakes, pictured in the first section
        assert f"![{e}]({e})" in first and (tmp_path / "report" / e).is_file()
    assert len(r.missed) == min(3, len(bad) - caught)


def test_eval_report_shows_how_the_bundle_was_trained(tiny_bundle, tiny_data, tmp_path):
    import cv2

    evaluate(Inspector(tiny_bundle, "torch"), tiny_data, tmp_path / "report", progress=False)
    md = (tmp_path / "report" / "report.md").read_text()
    fine = [h["fine"] for h in tiny_bundle.manifest["history"] if "fine" in h]
    assert len(fine) >= 2
    assert f"loss {fine[0]:.4f} -> {fine[-1]:.4f}" in md
    compact = tiny_bundle.manifest["compactness"]
    assert f"{compact['heldout_mean_distance']:.3f}" in md
    assert "![training](training.png)" in md
    plot = cv2.imread(str(tmp_path / "report" / "training.png"))
    assert plot is not None and plot.shape[1] == 4 * 360  # loss, collapse check, ICA angles, good scores
    # the bundle has ICA: the report shows test images before and after alignment
    assert "![ICA alignment](ica-alignment.png)" in md
    assert cv2.imread(str(tmp_path / "report" / "ica-alignment.png")).shape[0] == 2 * 160


def test_the_training_section_names_a_collapse_and_an_ica_only_run():
    from cfnc_edge.report.eval_markdown import _training_section

    compact = {"heldout_mean_distance": 10.0, "ica_angles": {"min": -1.0, "max": 1.0, "std": 0.5}}
    collapsed = [{"step": 5, "fine": 0.0, "encoder_std": 0.9},
                 {"step": 10, "fine": -0.5, "encoder_std": 0.01, "collapsed": True, "restored_step": 5}]
    md = "\n".join(_training_section({"threshold": {}, "compactness": compact, "history": collapsed}))
    assert "collapsed at step 10" in md and "weights of step 5 were restored" in md
    ica_only = [{"step": 5, "ica": 0.3}, {"step": 10, "ica": 0.1}]
    md = "\n".join(_training_section({"threshold": {}, "compactness": compact, "history": ica_only}))
    assert "coarse alignment (ICA) loss 0.3000 -> 0.1000 over 10 steps" in md and "no training" not in md
    assert _training_section({"threshold": {}}) == []  # a bundle from before the training evidence
    untrained = {"threshold": {}, "compactness": compact, "history": [], "model": {"ica": False},
                 "train": {"noncontrastive": False}}
    assert "no training: the features are the backbone's ImageNet features" in "\n".join(_training_section(untrained))
    no_record = {**untrained, "train": {"noncontrastive": True}}  # trained, but its history was not kept
    assert "no training history recorded" in "\n".join(_training_section(no_record))


def test_a_bundle_that_trained_nothing_says_so_instead_of_drawing_empty_plots(tiny_data, tmp_path):
    import cv2

    from cfnc_edge.api import train
    from cfnc_edge.model.coarse_to_fine import ModelConfig
    from cfnc_edge.model.train import TrainConfig
    from cfnc_edge.report.panels import H, W
    from tests.conftest import TINY

    # the default recipe (api.recipe()) at the tests' size: ImageNet features, the combined scorer
    b = train(tiny_data, tmp_path / "b", ModelConfig(image_size=TINY, feature_dim=16, ica=False, fca=False,
                                                     head="combined"),
              TrainConfig(noncontrastive=False, batch_size=4), scorer="combined", progress=False)
    assert b.manifest["history"] == []
    evaluate(Inspector(b, "torch"), tiny_data, tmp_path / "report", progress=False)
    md = (tmp_path / "report" / "report.md").read_text()
    training = md.split("## Training")[1].split("\n## ")[0]
    assert "no training: the features are the backbone's ImageNet features" in training
    assert "ICA" not in training and "loss" not in training  # nothing trained, nothing aligned
    for plot in (tmp_path / "report" / "training.png", b.path / "training.png"):
        img = cv2.imread(str(plot))
        # one panel (the good scores against the threshold), then the notes in words
        assert img.shape[1] == 2 * W and img[:H, W:].min() == 255 and img[:H, :W].min() < 255
