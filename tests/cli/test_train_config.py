"""`train --config FILE`: a TOML file of train's options, the command line over it, and the
file the bundle keeps so that the same training can be asked for again."""

import subprocess
import sys
import tomllib

import pytest
from typer.testing import CliRunner

from cfnc_edge.api.train_config import TRAIN_CONFIG
from cfnc_edge.bundle import Bundle
from cfnc_edge.cli import app
from cfnc_edge.errors import CfncError


def _train(*args):
    r = CliRunner().invoke(app, ["train", *map(str, args)])
    assert r.exit_code == 0, (r.output, r.exception)


def test_a_config_round_trip_trains_the_same_way_and_the_command_line_wins(tiny_data, tmp_path):
    config = tmp_path / "train.toml"
    config.write_text(f'data = "{tiny_data}"\nout = "{tmp_path / "a"}"\nrecipe = "pretrained"\n'
                      'image-size = 64\ndim = 8\nbatch-size = 4\nscorer = "gaussian"\ntarget-fpr = 0.2\n')
    _train("--config", config, "--dim", "16")  # given on the command line: wins over the file's 8
    a = Bundle.open(tmp_path / "a")
    assert a.model_config["feature_dim"] == 16 and a.model_config["image_size"] == 64 and a.scorer == "gaussian"
    assert a.manifest["threshold"]["target_fpr"] == 0.2
    written = tomllib.loads((a.path / TRAIN_CONFIG).read_text())
    assert TRAIN_CONFIG in a.manifest["files"]  # hashed (and signed) with the other files
    assert written["dim"] == 16 and written["recipe"] == "pretrained" and written["data"] == str(tiny_data)

    _train("--config", a.path / TRAIN_CONFIG, "--out", tmp_path / "b")
    b = Bundle.open(tmp_path / "b")
    for key in ("model", "train", "scorer", "gaussian"):
        assert b.manifest[key] == a.manifest[key], key
    again = tomllib.loads((b.path / TRAIN_CONFIG).read_text())
    assert {**again, "out": None} == {**written, "out": None} and again["out"] == str(tmp_path / "b")


@pytest.mark.parametrize("line, message", [
    ("stepz = 3", "unknown key 'stepz'"),
    ('steps = "many"', "steps must be an integer, got 'many'"),
    ("ica = 1", "ica must be true or false, got 1"),
    ("steps = [", "is not TOML"),
])
def test_an_unknown_key_or_a_wrong_type_is_one_line_before_any_work(tmp_path, line, message):
    config = tmp_path / "train.toml"
    config.write_text(f'data = "{tmp_path}"\nout = "{tmp_path / "out"}"\n{line}\n')
    r = CliRunner().invoke(app, ["train", "--config", str(config)])
    assert isinstance(r.exception, CfncError) and message in str(r.exception), r.output
    assert not (tmp_path / "out").exists()


def test_the_cli_refuses_an_unknown_key_without_a_traceback(tmp_path):
    config = tmp_path / "train.toml"
    config.write_text("stepz = 3\n")
    r = subprocess.run([sys.executable, "-m", "cfnc_edge", "train", "--config", str(config)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [f"error: --config {config}: unknown key 'stepz'; the keys are the "
                                             "command's option names without the dashes, e.g. steps, image-size, dim"]
