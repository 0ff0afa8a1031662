"""examples/spark/extract_features.py: features of the held-out digits written by CaffeOnSpark
as Parquet (and as JSON), loaded back with Spark: one row per input row, every id joining
back to the input, the schema SampleID / label / blobs, and the values those the engine
computes directly on the same rows with the same model."""

from __future__ import annotations

import numpy as np
import pytest

from .conftest import N_TEST, example


def run_example(spark, digits, tmp_path, pipeline, *flags):
    extract = example("extract_features")
    args, result = pipeline
    args = extract.parse_args(["--data", str(digits), "--work", str(tmp_path / "work"),
                               "--model", result["lenet_model"], *flags])
    return extract.main(spark, args)


def assert_engine_values(rows, reference, blobs):
    by_id = {r.SampleID: r for r in rows}
    assert len(rows) == N_TEST and sorted(by_id) == reference["ids"]
    ordered = [by_id[k] for k in reference["ids"]]
    np.testing.assert_array_equal([r.label for r in ordered], reference["label"])
    for blob in blobs:
        got = np.array([getattr(r, blob) for r in ordered], dtype=np.float32)
        np.testing.assert_allclose(got, reference[blob], rtol=1e-4, atol=1e-4)


def test_parquet_features_one_row_per_input_joined_on_id(
    spark, digits, tmp_path, pipeline, engine_features
):
    out = run_example(spark, digits, tmp_path, pipeline)
    assert out["output"].name == "ip1.parquet" and out["output"].is_dir()
    back = spark.read.parquet(str(out["output"]))
    assert back.schema.simpleString() == "struct<SampleID:string,label:double,ip1:array<float>>"
    rows = back.collect()
    assert_engine_values(rows, engine_features, ["ip1"])
    assert out["rows"] == N_TEST and out["joined"].count() == N_TEST
    joined = out["joined"].select("id", "label", "feature_label").collect()
    assert all(r.label == r.feature_label for r in joined)  # each id met its own row
    assert not [p for p in out["output"].parent.iterdir() if p.name.startswith(".")]


def test_json_features_load_back_with_the_engine_values(
    spark, digits, tmp_path, pipeline, engine_features
):
    out = run_example(spark, digits, tmp_path, pipeline, "--format", "json",
                      "--features", "ip1,ip2")
    back = spark.read.json(str(out["output"]))
    types = dict(back.dtypes)
    assert types == {"SampleID": "string", "label": "double", "ip1": "array<double>",
                     "ip2": "array<double>"}
    assert_engine_values(back.collect(), engine_features, ["ip1", "ip2"])
    with pytest.raises(FileExistsError, match="ip1_ip2.json exists"):
        run_example(spark, digits, tmp_path, pipeline, "--format", "json",
                    "--features", "ip1,ip2")
