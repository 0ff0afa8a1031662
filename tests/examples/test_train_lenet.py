"""examples/spark/train_lenet.py: CaffeOnSpark's first command (`caffeonspark -train
-features ip2 -label label ... -model ... -output ...`) run through the command line on the
running session: the model is written, and the held-out digits' ip2 and labels load back from
the JSON output, one row per digit."""

from __future__ import annotations

import pytest

from .conftest import N_TEST, example


def test_command_line_trains_and_writes_features(spark, digits, tmp_path, capsys):
    train = example("train_lenet")
    args = train.parse_args(["--data", str(digits), "--work", str(tmp_path / "work"),
                             "--iterations", "20"])
    out = train.main(spark, args)
    printed = capsys.readouterr().out
    assert "caffeonspark -train -features ip2 -label label -conf " in printed
    assert "-clusterSize 1 -devices 1 -connection ethernet -model file:" in printed
    assert out["model"].is_file() and out["model"].name == "mnist_lenet.model"
    back = spark.read.json(str(out["output"]))
    assert back.count() == N_TEST
    assert set(back.columns) == {"SampleID", "label", "ip2"}
    assert len(back.first().ip2) == 10
    assert back.select("SampleID").distinct().count() == N_TEST
    with pytest.raises(FileExistsError, match="lenet_features_result exists"):
        train.main(spark, args)
