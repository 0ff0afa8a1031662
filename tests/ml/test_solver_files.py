"""caffeonspark/ml/solver_files.py without Spark: the stage's solver copy names its net by
absolute path and carries the base_lr / max_iter overrides (the rest unchanged); a `net`
replaces the solver's; the saved pair names "net.prototxt" and reads back through Config;
missing files are ConfigErrors naming the param."""

from __future__ import annotations

from pathlib import Path

import pytest

from caffeonspark import model_io
from caffeonspark.errors import ConfigError
from caffeonspark.ml.solver_files import save_solver, write_solver
from caffeonspark.spark import Config

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "spark"
SOLVER = EXAMPLES / "lenet_memory_solver.prototxt"
NET = EXAMPLES / "lenet_memory_train_test.prototxt"


def test_overrides_and_absolute_net(tmp_path):
    solver, net = write_solver(str(tmp_path), str(SOLVER), base_lr=0.005, max_iter=7)
    param = model_io.read_solver_prototxt(solver)
    original = model_io.read_solver_prototxt(SOLVER)
    assert (param.net, net) == (str(tmp_path / "net.prototxt"),) * 2
    assert (param.base_lr, param.max_iter) == (pytest.approx(0.005), 7)
    assert (param.momentum, param.lr_policy) == (original.momentum, original.lr_policy)
    assert model_io.read_net_prototxt(net) == model_io.read_net_prototxt(NET)


def test_net_replaces_the_solvers(tmp_path):
    other = model_io.read_net_prototxt(NET)
    other.name = "Other"
    model_io.write_prototxt(tmp_path / "other.prototxt", other)
    (tmp_path / "copy").mkdir()
    _, net = write_solver(str(tmp_path / "copy"), str(SOLVER), net=str(tmp_path / "other.prototxt"))
    assert model_io.read_net_prototxt(net).name == "Other"


def test_saved_pair_reads_back_beside_each_other(tmp_path):
    (tmp_path / "work").mkdir()
    (tmp_path / "saved").mkdir()
    solver, _ = write_solver(str(tmp_path / "work"), str(SOLVER), base_lr=0.25)
    save_solver(str(tmp_path / "saved"), solver)
    assert model_io.read_solver_prototxt(tmp_path / "saved" / "solver.prototxt").net == (
        "net.prototxt")
    conf = Config(conf=str(tmp_path / "saved" / "solver.prototxt"))
    assert conf.net_path == str(tmp_path / "saved" / "net.prototxt")
    assert conf.solver_param.base_lr == pytest.approx(0.25)


def test_missing_files_name_the_param(tmp_path):
    with pytest.raises(ConfigError, match="param solver names '.*nope.prototxt'"):
        write_solver(str(tmp_path), str(tmp_path / "nope.prototxt"))
    with pytest.raises(ConfigError, match="CaffeModel: param net names"):
        write_solver(str(tmp_path), str(SOLVER), net=str(tmp_path / "nope"), owner="CaffeModel")
