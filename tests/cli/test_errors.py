"""User errors on one line, bugs with their traceback (python/caffeonspark/cli_report.py),
run through the console scripts as a person runs them; the error classes and the internal
error path in-process, with the verb's function patched to raise."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

import caffeonspark
from caffeonspark import cli, errors
from caffeonspark.cli_report import REPORT_LINE

REPO = Path(__file__).resolve().parents[2]
# The caffeonspark under test (the checkout in development, site-packages after pip install).
PACKAGE_DIR = Path(caffeonspark.__file__).resolve().parents[1]
SHAPES = """name: "s"
layer { name: "a" type: "Input" top: "a" input_param { shape { dim: 2 dim: 3 } } }
layer { name: "b" type: "Input" top: "b" input_param { shape { dim: 2 dim: 4 } } }
layer { name: "sum" type: "Eltwise" bottom: "a" bottom: "b" top: "s" }
"""
CONV_TYPO = """name: "n"
layer { name: "a" type: "Input" top: "a" input_param { shape { dim: 1 dim: 1 dim: 4 dim: 4 } } }
layer { name: "c" type: "Convolution" bottom: "a" top: "c"
  convolution_param { num_ouput: 3 kernel_size: 1 } }
"""


def write_solver(folder: Path) -> str:
    """A solver of the example LeNet (its net by absolute path) that Config accepts."""
    net = REPO / "examples" / "mnist" / "lenet_train_test.prototxt"
    (folder / "solver.prototxt").write_text(f'net: "{net}"\nbase_lr: 0.01\n')
    return "solver.prototxt"


def one_error_line(result, code: int) -> str:
    """The single stderr line, checked to be `caffeonspark: error: ...` with exit `code`."""
    assert result.returncode == code, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(("caffeonspark: error: ", "caffeonspark-submit: error: "))
    assert result.stdout == ""
    return lines[0]


def test_missing_file(console, tmp_path):
    line = one_error_line(console("time", "-model", "missing.prototxt"), 1)
    assert line == "caffeonspark: error: missing.prototxt: cannot read: No such file or directory"


def test_bad_prototxt_names_file_line_column(console, tmp_path):
    (tmp_path / "broken.prototxt").write_text('net: "x.prototxt"\nbase_lr: oops\n')
    line = one_error_line(console("train", "-solver", "broken.prototxt"), 1)
    assert line == ("caffeonspark: error: broken.prototxt:2:10: 'base_lr: oops': "
                    "Couldn't parse float: oops")


def test_misspelt_solver_field_gets_a_suggestion(console, tmp_path):
    (tmp_path / "s.prototxt").write_text('net: "x.prototxt"\nbase_lr: 0.01\nmomentun: 0.9\n')
    line = one_error_line(console("train", "-solver", "s.prototxt"), 1)
    assert line == ('caffeonspark: error: s.prototxt:3:1: Message type "caffe.SolverParameter" '
                    "has no field named \"momentun\" (did you mean 'momentum'?)")


def test_misspelt_layer_param_gets_a_suggestion(console, tmp_path):
    (tmp_path / "n.prototxt").write_text(CONV_TYPO)
    line = one_error_line(console("time", "-model", "n.prototxt"), 1)
    assert line == ('caffeonspark: error: n.prototxt:4:23: Message type '
                    '"caffe.ConvolutionParameter" has no field named "num_ouput" '
                    "(did you mean 'num_output'?)")


def test_wrong_shape_names_the_layer(console, tmp_path):
    (tmp_path / "shapes.prototxt").write_text(SHAPES)
    line = one_error_line(console("time", "-model", "shapes.prototxt"), 1)
    assert line == ("caffeonspark: error: layer 'sum' (Eltwise) at shapes.prototxt:4: bottom 1 "
                    "has shape (2, 4) but bottom 0 has (2, 3); all bottoms must have the same "
                    "shape")


def test_unknown_flag_of_a_verb_is_a_usage_error(console):
    line = one_error_line(console("train", "-solver", "s.prototxt", "-bogus"), 2)
    assert line == "caffeonspark: error: unrecognized arguments: -bogus (see caffeonspark -h)"
    line = one_error_line(console("train"), 2)
    assert line == ("caffeonspark: error: train: the following arguments are required: "
                    "-solver/--solver (see caffeonspark train -h)")


def test_unknown_spark_flag_is_a_usage_error(console):
    line = one_error_line(console("-train", "-bogus"), 2)
    assert line.startswith("caffeonspark: error: Unrecognized option: -bogus (CaffeOnSpark flags:")
    line = one_error_line(console("-train", "-conf", "nope.prototxt"), 2)
    assert line == "caffeonspark: error: -conf: solver file 'nope.prototxt' does not exist"


def test_submit_usage_error(console):
    line = one_error_line(console("--clusterSize", "2", script="caffeonspark-submit"), 2)
    assert line.startswith("caffeonspark-submit: error: ")
    assert "CaffeOnSpark flags take one dash" in line


def test_no_spark_installed(console, tmp_path):
    # A pyspark that cannot be imported stands in for a machine without the `spark` extra.
    fake = tmp_path / "nospark" / "pyspark"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'pyspark'\", name='pyspark')\n")
    result = console("-train", "-conf", write_solver(tmp_path), "-model", f"file:{tmp_path}/m",
                     env={"PYTHONPATH": f"{fake.parent}:{PACKAGE_DIR}"})
    line = one_error_line(result, 1)
    assert line == ("caffeonspark: error: pyspark is not installed: pip install "
                    "'caffeonspark[spark]' for the Spark driver")


def test_no_java_is_one_line(console, tmp_path):
    # PATH holds only an empty folder and JAVA_HOME is unset: Spark's launcher would find
    # no java, so the driver says so before it starts a JVM (spark/java_check.py).
    empty = tmp_path / "bin"
    empty.mkdir()
    result = console("-train", "-conf", write_solver(tmp_path), "-model", f"file:{tmp_path}/m",
                     "-clusterSize", "1", env={"PATH": str(empty), "JAVA_HOME": ""})
    line = one_error_line(result, 1)
    assert line == ("caffeonspark: error: Spark needs Java (JAVA_HOME is not set and no java "
                    "on PATH): install a JDK 17 (Debian: apt-get install "
                    "openjdk-17-jre-headless)")
    result = console("-train", "-conf", write_solver(tmp_path), "-model", f"file:{tmp_path}/m",
                     env={"PATH": str(empty), "JAVA_HOME": str(tmp_path)})
    line = one_error_line(result, 1)
    assert line == (f"caffeonspark: error: Spark needs Java (JAVA_HOME={tmp_path} has no "
                    "bin/java): install a JDK 17 (Debian: apt-get install "
                    "openjdk-17-jre-headless), or set JAVA_HOME to one")


@pytest.mark.parametrize("where", ["end", "start", "spark", "env"])
def test_debug_shows_the_traceback(console, tmp_path, where):
    (tmp_path / "broken.prototxt").write_text("base_lr: oops\n")
    args = ["train", "-solver", "broken.prototxt"]
    env = None
    if where == "end":
        args.append("--debug")
    elif where == "start":
        args.insert(0, "--debug")
    elif where == "spark":
        args = ["-train", "--debug", "-conf", "nope.prototxt"]
    else:
        env = {"CAFFEONSPARK_DEBUG": "1"}
    result = console(*args, env=env)
    assert result.returncode == (2 if where == "spark" else 1)
    assert result.stderr.startswith("Traceback (most recent call last):")
    last = result.stderr.splitlines()[-1]
    assert last.startswith("caffeonspark: error: ")
    assert REPORT_LINE not in result.stderr


def test_submit_debug_shows_the_traceback(console):
    result = console("--clusterSize", "2", "--debug", script="caffeonspark-submit")
    assert result.returncode == 2
    assert result.stderr.startswith("Traceback (most recent call last):")
    assert "SubmitError" in result.stderr
    assert result.stderr.splitlines()[-1].startswith("caffeonspark-submit: error: ")


def test_submit_debug_reaches_the_driver(console, tmp_path):
    result = console("--dry-run", "--debug", "-train", "-conf", write_solver(tmp_path),
                     "-model", f"file:{tmp_path}/m", script="caffeonspark-submit")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("CAFFEONSPARK_DEBUG=1 ") or " CAFFEONSPARK_DEBUG=1 " in \
        result.stdout
    assert "--debug" not in result.stdout


# -- in-process: every error class, bugs, Ctrl-C -----------------------------------------

USER_ERRORS = [
    errors.ConfigError("-clusterSize wants an integer"),
    errors.ShapeError("layer 'ip1': weights (10, 5) do not fit (10, 4)"),
    errors.FormatError("m.caffemodel: truncated"),
    errors.IoError("data.lmdb: cannot open"),
    errors.CommError("rank 1 at 10.0.0.2:4000: connection reset"),
    errors.PeerTimeout("rank 1 did not answer in 60 s"),
    errors.CudaError("this build has no CUDA"),
    FileNotFoundError(2, "No such file or directory", "weights.caffemodel"),
    NotImplementedError("-imageRoot: the captioning tools are not in this version"),
]


def patch_time_verb(monkeypatch, error: BaseException) -> None:
    def raising(args):
        raise error

    monkeypatch.setattr(cli, "time_layers", raising)


@pytest.mark.parametrize("error", USER_ERRORS, ids=lambda e: type(e).__name__)
def test_each_user_error_is_one_line(monkeypatch, capsys, error):
    patch_time_verb(monkeypatch, error)
    assert cli.main(["time", "-model", "m.prototxt"]) == 1
    captured = capsys.readouterr()
    expected = (
        "weights.caffemodel: No such file or directory"
        if isinstance(error, FileNotFoundError) else str(error)
    )
    assert captured.err == f"caffeonspark: error: {expected}\n"
    assert captured.out == ""


@pytest.mark.parametrize("error", [errors.InternalError("broken invariant"),
                                   RuntimeError("unexpected"), KeyError("x")],
                         ids=lambda e: type(e).__name__)
def test_a_bug_shows_its_traceback_and_asks_for_a_report(monkeypatch, capsys, error):
    patch_time_verb(monkeypatch, error)
    assert cli.main(["time", "-model", "m.prototxt"]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    assert lines[-2] == f"{type(error).__module__}.{type(error).__qualname__}: {error}".replace(
        "builtins.", "")
    assert lines[-1] == REPORT_LINE


def test_ctrl_c_exits_130_quietly(monkeypatch, capsys):
    patch_time_verb(monkeypatch, KeyboardInterrupt())
    assert cli.main(["time", "-model", "m.prototxt"]) == 130
    assert capsys.readouterr() == ("", "")


def test_multi_line_message_keeps_its_lines_without_traceback(monkeypatch, capsys):
    patch_time_verb(monkeypatch, errors.ConfigError("two problems:\n-a is wrong\n-b is wrong"))
    assert cli.main(["time", "-model", "m.prototxt"]) == 1
    assert capsys.readouterr().err == (
        "caffeonspark: error: two problems:\n    -a is wrong\n    -b is wrong\n"
    )


def test_an_error_already_logged_is_not_printed_twice(monkeypatch, capsys, caplog):
    def logs_then_raises(args):
        logging.getLogger("caffeonspark.distributed").error("rank 0 failed: %s", "disk full")
        raise errors.IoError("disk full")

    monkeypatch.setattr(cli, "time_layers", logs_then_raises)
    assert cli.main(["time", "-model", "m.prototxt"]) == 1
    assert "caffeonspark: error:" not in capsys.readouterr().err
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert said == ["rank 0 failed: disk full"]
