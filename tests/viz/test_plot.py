"""`caffeonspark plot`: curves read from a training log and from event files, drawn as a
1200x800 PNG that is not blank."""

from __future__ import annotations

import matplotlib.image
import numpy as np
import pytest

from caffeonspark import cli
from caffeonspark.viz.curves import read_curves
from caffeonspark.viz.plot import HEIGHT, WIDTH


def _check_png(path) -> None:
    pixels = matplotlib.image.imread(str(path))
    assert pixels.shape[:2] == (HEIGHT, WIDTH)
    assert float(pixels[..., :3].var()) > 0.01  # white background with axes, lines, text


def test_log_curves_follow_the_log_lines(lenet_run):
    curves = read_curves(str(lenet_run.log))
    loss = curves.series["train/loss"]
    assert [p.iteration for p in loss] == [0, 5, 10, 15, 20]
    assert loss[0].value == pytest.approx(float(
        lenet_run.log.read_text().split("Iteration 0 (")[1].split("loss = ")[1].split()[0]))
    seconds = [p.seconds for p in loss]
    assert seconds == sorted(seconds) and seconds[-1] > seconds[0] > 0
    assert [p.iteration for p in curves.series["test/accuracy"]] == [0, 10, 20]
    assert [p.iteration for p in curves.series["test/loss"]] == [0, 10, 20]
    assert set(curves.series) == {"train/loss", "test/accuracy", "test/loss"}


def test_event_curves_match_the_log_curves(lenet_run):
    from_log = read_curves(str(lenet_run.log))
    from_events = read_curves(str(lenet_run.events))
    for name in ("train/loss", "test/accuracy"):
        assert [p.iteration for p in from_events.series[name]] == [
            p.iteration for p in from_log.series[name]]
        np.testing.assert_allclose([p.value for p in from_events.series[name]],
                                   [p.value for p in from_log.series[name]], rtol=1e-5)
    seconds = [p.seconds for p in from_events.series["train/loss"]]
    assert seconds == sorted(seconds) and seconds[-1] > 0


def test_plot_verb_on_log_and_events(lenet_run, tmp_path, capsys):
    from_log, from_events = tmp_path / "log.png", tmp_path / "events.png"
    assert cli.main(["plot", str(lenet_run.log), "-o", str(from_log)]) == 0
    assert cli.main(["plot", str(lenet_run.events), "-o", str(from_events),
                     "-title", "LeNet"]) == 0
    _check_png(from_log)
    _check_png(from_events)
    assert "test/accuracy" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.png", "log.png"]


def test_plot_verb_refuses_a_file_without_values(tmp_path, capsys):
    empty = tmp_path / "empty.log"
    empty.write_text("nothing here\n")
    assert cli.main(["plot", str(empty), "-o", str(tmp_path / "x.png")]) == 1
    error = capsys.readouterr().err
    assert error == f"caffeonspark: error: {empty}: no display, test or scalar values found\n"
    assert not (tmp_path / "x.png").exists()
