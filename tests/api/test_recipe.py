"""The recipes: what `train` does when the user names no method, and the paper's method one flag away."""

import subprocess
import sys

import pytest

from cfnc_edge.api import recipe
from cfnc_edge.bundle import Bundle
from cfnc_edge.errors import CfncError


def test_the_default_recipe_trains_nothing_and_leaves_the_scorer_to_the_search():
    assert recipe() == {"ica": False, "fca": False, "noncontrastive": False, "scorer": None}
    assert recipe("pretrained") == {"ica": False, "fca": False, "noncontrastive": False, "scorer": "combined"}
    assert recipe("paper") == {"ica": True, "fca": True, "noncontrastive": True, "scorer": "gaussian"}


def test_flags_override_the_recipe_and_none_means_not_given():
    assert recipe("paper", ica=False, scorer="knn", fca=None) == {
        "ica": False, "fca": True, "noncontrastive": True, "scorer": "knn"}


def test_an_unknown_recipe_is_one_clear_line():
    with pytest.raises(CfncError, match="--recipe must be one of auto, pretrained, paper, got 'fast'"):
        recipe("fast")


def _train(tiny_data, out, *flags):
    r = subprocess.run([sys.executable, "-m", "cfnc_edge", "train", str(tiny_data), "--out", str(out),
                        "--image-size", "64", "--dim", "8", "--batch-size", "4", *flags],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr
    return Bundle.open(out)


def test_cli_train_without_a_method_deploys_what_the_search_chose_on_untrained_features(tiny_data, tmp_path):
    from cfnc_edge.api.training import SCORER_HEADS

    b = _train(tiny_data, tmp_path / "b")  # --image-size 64 given: the search keeps it
    sel = b.manifest["selection"]
    assert b.scorer == sel["scorer"] and b.model_config["head"] == SCORER_HEADS[sel["scorer"]]
    assert b.model_config["image_size"] == 64 and b.model_config["feature_dim"] == 8
    assert b.model_config["ica"] == sel["candidate"]["ica"] and not b.model_config["fca"]
    assert b.manifest["history"] == []  # nothing was trained


def test_cli_train_with_the_pretrained_recipe_fits_both_scorers_on_untrained_features(tiny_data, tmp_path):
    b = _train(tiny_data, tmp_path / "b", "--recipe", "pretrained")
    assert b.scorer == "combined" and b.model_config["head"] == "combined"
    assert not b.model_config["ica"] and not b.model_config["fca"]
    assert b.manifest["history"] == []  # nothing was trained
    assert b.manifest["compactness"]["heldout_mean_distance"] > 0  # the Gaussian's figure, as for --scorer gaussian


def test_training_options_under_a_recipe_that_trains_nothing_are_named_as_ignored(tiny_data, tmp_path):
    r = subprocess.run([sys.executable, "-m", "cfnc_edge", "train", str(tiny_data), "--out", str(tmp_path / "b"),
                        "--image-size", "64", "--dim", "8", "--steps", "50", "--lr-heads", "0.1",
                        "--budget", "1"],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr
    assert "--steps, --lr-heads have no effect" in r.stderr
    # one sentence for the user, not Python's warning format with the source line
    assert "warning: nothing trains with recipe 'auto'" in r.stderr and "UserWarning" not in r.stderr
    r = subprocess.run([sys.executable, "-m", "cfnc_edge", "train", str(tiny_data), "--out", str(tmp_path / "f"),
                        "--image-size", "64", "--dim", "8", "--recipe", "pretrained", "--fca", "--steps", "50"],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr
    assert "--steps have no effect" in r.stderr  # FCA alone has no loss: nothing trains
    r = subprocess.run([sys.executable, "-m", "cfnc_edge", "train", str(tiny_data), "--out", str(tmp_path / "a"),
                        "--image-size", "64", "--fca"], capture_output=True, text=True, timeout=900)
    assert r.returncode == 2 and "--recipe auto chooses the alignment" in r.stderr  # one line, before any work
    r = subprocess.run([sys.executable, "-m", "cfnc_edge", "train", str(tiny_data), "--out", str(tmp_path / "c"),
                        "--image-size", "64", "--dim", "8", "--recipe", "paper", "--steps", "1"],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr
    assert "no effect" not in r.stderr


def test_cli_train_with_the_paper_recipe_trains_ica_fca_and_the_fine_alignment(tiny_data, tmp_path):
    b = _train(tiny_data, tmp_path / "b", "--recipe", "paper", "--steps", "2")
    assert b.scorer == "gaussian" and b.model_config["ica"] and b.model_config["fca"]
    assert b.manifest["train"]["noncontrastive"] and b.manifest["history"][-1]["step"] == 2


@pytest.mark.parametrize("scorer, head", [("gaussian", "combined"), ("knn", "combined"), ("combined", "pooled")])
def test_a_scorer_that_does_not_read_the_head_is_refused_before_any_work(tiny_data, tmp_path, scorer, head):
    from cfnc_edge.api import train
    from cfnc_edge.model.coarse_to_fine import ModelConfig
    from cfnc_edge.model.train import TrainConfig

    with pytest.raises(CfncError, match=f"--scorer {scorer} does not read the {head} feature head"):
        train(tiny_data, tmp_path / "b", ModelConfig(image_size=64, feature_dim=8, head=head), TrainConfig(steps=0),
              scorer=scorer, progress=False)
    assert not (tmp_path / "b" / "versions").exists()


def test_a_train_config_alone_keeps_the_recipes_choice_of_what_trains(tiny_data, tmp_path):
    from cfnc_edge.api import train
    from cfnc_edge.model.train import TrainConfig

    b = train(tiny_data, tmp_path / "b", train_cfg=TrainConfig(steps=3, batch_size=4), recipe_name="pretrained",
              progress=False)
    assert b.scorer == "combined" and b.manifest["history"] == [] and not b.manifest["train"]["noncontrastive"]


def test_a_refused_training_option_is_the_only_line(tiny_data, tmp_path):
    # before: "--epochs have no effect" was printed, then the value was refused
    r = subprocess.run([sys.executable, "-m", "cfnc_edge", "train", str(tiny_data), "--out", str(tmp_path / "b"),
                        "--epochs", "-1"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "--epochs" in r.stderr and "error:" in r.stderr, r.stderr
    assert "no effect" not in r.stderr
