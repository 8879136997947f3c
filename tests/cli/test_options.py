"""Every bad option: refused before any work, in one line naming the option."""

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from cfnc_edge.cli import app
from cfnc_edge.errors import CfncError

BAD = [
    ("train", ["--dim", "0"], "--dim must be an integer of at least 1"),
    ("train", ["--image-size", "0"], "--image-size must be"),
    ("train", ["--image-size", "50"], "multiple of 4"),
    ("train", ["--epochs", "-1"], "--epochs must be"),
    ("train", ["--batch-size", "0"], "--batch-size must be"),
    ("train", ["--lr", "0"], "--lr must be a finite number above 0"),
    ("train", ["--lr-ica", "nan"], "--lr-ica must be"),
    ("train", ["--eps", "-1"], "--eps must be a finite number above 0, got -1.0"),
    ("train", ["--target-fpr", "1.5"], "--target-fpr must be a fraction in (0, 1)"),
    ("train", ["--target-fpr", "0"], "--target-fpr must be"),
    ("train", ["--folds", "1"], "--folds must be an integer of at least 2"),
    ("train", ["--steps", "-1"], "--steps must be"),
    ("train", ["--lr-heads", "0"], "--lr-heads must be"),
    ("train", ["--lr-backbone", "-1"], "--lr-backbone must be a finite number of at least 0"),
    ("train", ["--fine-levels", "3"], "--fine-levels must be pyramid levels among 0, 1, 2"),
    ("train", ["--fine-levels", "a"], "--fine-levels must be distinct pyramid levels"),
    ("train", ["--fine-levels", "1,1"], "--fine-levels must be distinct pyramid levels"),
    ("train", ["--covariance", "diagonal"], "--covariance must be one of"),
    ("train", ["--scorer", "svm"], "--scorer must be one of gaussian, knn"),
    ("train", ["--threshold", "nan"], "--threshold must be a finite number above 0, got nan"),
    ("train", ["--threshold", "-5"], "--threshold must be"),
    ("train", ["--seed", "-1"], "--seed must be"),
    ("train", ["--factor-precision", "int4"], "--factor-precision must be one of fp32, fp16, int8"),
    ("fit", ["--eps", "0"], "--eps must be"),
    ("fit", ["--factor-precision", "bf16"], "--factor-precision must be one of"),
    ("fit", ["--target-fpr", "2"], "--target-fpr must be"),
    ("fit", ["--threshold", "inf"], "--threshold must be"),
    ("threshold", ["--target-fpr", "2"], "--target-fpr must be"),
    ("threshold", ["--threshold", "-1"], "--threshold must be"),
    ("infer", ["--threshold", "nan"], "--threshold must be"),
    ("infer", ["--threshold", "-5"], "--threshold must be"),
    ("infer", ["--batch-size", "0"], "--batch-size must be"),
    ("infer", ["--on-error", "ignore"], "--on-error must be one of skip, fail"),
    ("eval", ["--threshold", "0"], "--threshold must be"),
    ("eval", ["--batch-size", "0"], "--batch-size must be"),
    ("calibrate", ["--n", "0"], "--n must be"),
    ("calibrate", ["--method", "kl"], "--method must be one of entropy, percentile, minmax"),
    ("build-engine", ["--precision", "fp8"], "--precision must be one of"),
    ("build-engine", ["--max-batch", "0"], "--max-batch must be"),
    ("bench", ["--batch", "0"], "--batch must be"),
    ("bench", ["--repeats", "0"], "--repeats must be"),
    ("demo", ["--image-size", "0"], "--image-size must be"),
    # found by the hostile probe (issue 22, item 4): these ran, or died in a traceback or out of memory
    ("train", ["--image-size", "100000"], "from 16 to 2048"),
    ("train", ["--bank-size", "-1"], "--bank-size must be a finite number above 0"),
    ("train", ["--bank-size", "nan"], "--bank-size must be"),
    ("train", ["--max-bank", "-5"], "--max-bank must be an integer of at least 0"),
    ("train", ["--recipe", "paper", "--tile-overlap", "1"], "--tile-overlap must be a fraction from 0 to 0.9"),
    ("fit", ["--bank-size", "0"], "--bank-size must be"),
    ("infer", ["--tile-overlap", "nan"], "--tile-overlap must be"),
    ("eval", ["--tile-overlap", "-0.5"], "--tile-overlap must be"),
    ("stream", ["--max-batch", "0"], "--max-batch must be an integer of at least 1"),  # it hung
    ("stream", ["--metrics-port", "70000"], "--metrics-port must be a port from 0 to 65535"),  # OverflowError
    ("stream", ["--max-wait-ms", "nan"], "--max-wait-ms must be"),
    ("stream", ["--max-frames", "0"], "--max-frames must be"),
    ("stream", ["--drift-alarm", "nan"], "--drift-alarm must be"),
    ("stream", ["--output", "."], "is a folder; give the JSON lines file"),  # IsADirectoryError
    ("compare", ["--steps", "-1"], "--steps must be"),  # printed "training on ..." first
    ("compare", ["--bank-size", "0"], "--bank-size must be"),
]


def args_for(command, tmp_path):
    """The command's required arguments, pointing at things that do not exist:
    a check that ran after any work would fail on those first."""
    missing = str(tmp_path / "nothing")
    return {"train": [missing, "--out", str(tmp_path / "out")], "fit": [missing, "--bundle", missing],
            "threshold": [missing, "--bundle", missing],
            "infer": [missing, "--bundle", missing], "eval": [missing, "--bundle", missing],
            "calibrate": ["--bundle", missing], "build-engine": ["--bundle", missing],
            "bench": ["--bundle", missing], "demo": ["--out", str(tmp_path / "demo")],
            "stream": ["--bundle", missing, "--source", missing], "compare": [missing, "--out", str(tmp_path / "out")]}[command]


@pytest.mark.parametrize("command,option,message", BAD, ids=[f"{c} {' '.join(o)}" for c, o, _ in BAD])
def test_bad_option_is_refused_before_any_work(command, option, message, tmp_path):
    result = CliRunner().invoke(app, [command, *args_for(command, tmp_path), *option])
    assert isinstance(result.exception, CfncError), result.output
    assert message in str(result.exception)
    assert "training on" not in result.output  # nothing announced before the refusal
    assert not (tmp_path / "out" / "versions").exists() and not (tmp_path / "demo").exists()


def test_the_cli_prints_one_error_line_and_exits_2(tmp_path):
    r = subprocess.run([sys.executable, "-m", "cfnc_edge", "train", tmp_path, "--out", tmp_path / "o", "--dim", "0"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == ["error: --dim must be an integer of at least 1, got 0"]


@pytest.mark.parametrize("command,option", [("eval", "--out"), ("infer", "--out"), ("bench", "--out"),
                                            ("stream", "--save-anomalies")])
def test_an_output_folder_that_is_a_file_is_refused_before_any_work(command, option, tmp_path):
    # eval found it only when writing the report, after the whole run (a FileExistsError traceback)
    existing = tmp_path / "report.png"
    existing.write_bytes(b"x")
    result = CliRunner().invoke(app, [command, *args_for(command, tmp_path), option, str(existing)])
    assert isinstance(result.exception, CfncError), result.output
    assert f"{option} {existing} is a file" in str(result.exception)
