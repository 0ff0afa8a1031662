"""The `caffeonspark` command: train / test / time / prepare-mnist, and its errors."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from caffeonspark import cli, model_io

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "mnist"


@pytest.fixture()
def small_lenet(tmp_path, monkeypatch):
    """The example LeNet solver, run from a folder holding a small generated set."""
    monkeypatch.chdir(tmp_path)
    assert cli.main(["prepare-mnist", "data/mnist", "--train-count", "640",
                     "--test-count", "200"]) == 0
    net = (EXAMPLES / "lenet_train_test.prototxt").read_text()
    Path("lenet_train_test.prototxt").write_text(net.replace("batch_size: 100", "batch_size: 50"))
    solver = (EXAMPLES / "lenet_solver.prototxt").read_text()
    for old, new in [('"examples/mnist/lenet_train_test.prototxt"', '"lenet_train_test.prototxt"'),
                     ("test_iter: 100", "test_iter: 4"), ("test_interval: 500", "test_interval: 10"),
                     ("max_iter: 10000", "max_iter: 20"), ("snapshot: 5000", "snapshot: 10"),
                     ("display: 100", "display: 5")]:
        assert old in solver
        solver = solver.replace(old, new)
    Path("solver.prototxt").write_text(solver)
    return tmp_path


def test_train_writes_snapshots_and_resumes(small_lenet, caplog):
    caplog.set_level(logging.INFO, logger="caffeonspark")
    assert cli.main(["train", "-solver", "solver.prototxt", "-threads", "1"]) == 0
    snapshots = small_lenet / "data" / "mnist"
    for it in (10, 20):
        assert (snapshots / f"lenet_iter_{it}.caffemodel").is_file()
        assert (snapshots / f"lenet_iter_{it}.solverstate").is_file()
    assert "Test net output #0: accuracy" in caplog.text
    state = model_io.read_solverstate(snapshots / "lenet_iter_10.solverstate")
    assert state.iter == 10 and len(state.history) == 8
    caplog.clear()
    assert cli.main(["train", "--solver", "solver.prototxt",
                     "--snapshot", str(snapshots / "lenet_iter_10.solverstate")]) == 0
    assert "Restoring previous solver status" in caplog.text


def test_test_and_time_verbs(small_lenet, caplog):
    caplog.set_level(logging.INFO, logger="caffeonspark")
    assert cli.main(["train", "-solver", "solver.prototxt"]) == 0
    weights = str(small_lenet / "data" / "mnist" / "lenet_iter_20.caffemodel")
    assert cli.main(["test", "-model", "lenet_train_test.prototxt", "-weights", weights,
                     "-iterations", "3"]) == 0
    assert "accuracy = " in caplog.text
    assert cli.main(["time", "-model", "lenet_train_test.prototxt", "-iterations", "2"]) == 0
    assert "conv1" in caplog.text and "Average Forward-Backward" in caplog.text


def test_bad_inputs_name_the_file(tmp_path, capsys):
    # The error is reported on one line (cli_report.py; the console script's cases are in
    # tests/cli/test_errors.py), exit status 1, or 2 for a command-line mistake.
    broken = tmp_path / "broken.prototxt"
    broken.write_text('net: "x.prototxt"\nbase_lr: oops\n')
    assert cli.main(["train", "-solver", str(broken)]) == 1
    assert capsys.readouterr().err == (
        f"caffeonspark: error: {broken}:2:10: 'base_lr: oops': Couldn't parse float: oops\n"
    )
    assert cli.main(["train"]) == 2  # -solver is required
    assert capsys.readouterr().err == (
        "caffeonspark: error: train: the following arguments are required: -solver/--solver"
        " (see caffeonspark train -h)\n"
    )
    missing = tmp_path / "missing.prototxt"
    assert cli.main(["time", "-model", str(missing)]) == 1
    assert capsys.readouterr().err == (
        f"caffeonspark: error: {missing}: cannot read: No such file or directory\n"
    )


def test_spark_mode_flags_reach_the_spark_driver_which_checks_them_first(tmp_path, capsys):
    # Checked before any Spark starts: exit status 2 and the flag at fault on stderr.
    assert cli.main(["-train", "-conf", str(tmp_path / "solver.prototxt")]) == 2
    assert "-conf: solver file" in capsys.readouterr().err
    assert cli.main(["-clusterSize", "2", "-bogus"]) == 2
    assert "Unrecognized option: -bogus" in capsys.readouterr().err


def test_weights_and_snapshot_are_exclusive(small_lenet, capsys):
    capsys.readouterr()
    assert cli.main(["train", "-solver", "solver.prototxt", "-weights", "a",
                     "-snapshot", "b"]) == 2
    assert capsys.readouterr().err == (
        "caffeonspark: error: train: give -weights or -snapshot, not both\n"
    )


def test_resize_flag_reaches_the_solver_and_the_net_as_feed_options(monkeypatch):
    from caffeonspark import engine, solver
    from caffeonspark.data.feed_options import FeedOptions

    feeds = []

    class Built:  # records the feed options a Solver / Net of the verb is built with
        net = None

        def __init__(self, *args, feed=None, **kwargs):
            feeds.append((type(self).__name__, feed))

        def solve(self, snapshot=None):
            pass

    monkeypatch.setattr(solver, "Solver", type("Solver", (Built,), {}))
    monkeypatch.setattr(engine, "Net", type("Net", (Built,), {}))
    assert cli.main(["train", "-solver", "s.prototxt", "-resize"]) == 0
    assert cli.main(["test", "-model", "m.prototxt", "-weights", "w", "-iterations", "0",
                     "-resize"]) == 0
    assert cli.main(["train", "-solver", "s.prototxt"]) == 0
    assert feeds == [
        ("Solver", FeedOptions(resize=True)),
        ("Net", FeedOptions(resize=True)),
        ("Solver", FeedOptions()),
    ]
    assert not cli.build_parser().parse_args(["train", "-solver", "s"]).resize


class FakeLaunch:
    """Stands in for launcher.launch: records the options the CLI gives it."""

    returncode = 0

    def __init__(self) -> None:
        self.options: dict = {}

    def __call__(self, solver, world_size, **options):
        self.options = dict(options, solver=solver, world_size=world_size)
        return self


def run_rank(monkeypatch, **env: str) -> dict:
    """worker.main() with a rank's environment plus `env`; returns the keywords it gave
    train_rank and checks that the job secret left the environment once read."""
    from caffeonspark.distributed import worker

    calls = []
    monkeypatch.setattr(worker, "train_rank", lambda *args, **kwargs: calls.append(kwargs))
    monkeypatch.setattr("caffeonspark.distributed.rendezvous.LocalRendezvous",
                        lambda *args: type("Rendezvous", (), {"all_gather": None})())
    environ = {
        "CAFFEONSPARK_RANK": "0", "CAFFEONSPARK_WORLD_SIZE": "2",
        "CAFFEONSPARK_JOB_SECRET": "00", "CAFFEONSPARK_RENDEZVOUS": "127.0.0.1:1",
        "CAFFEONSPARK_JOB_ID": "j", "CAFFEONSPARK_SOLVER": "s.prototxt", **env,
    }
    monkeypatch.setattr(worker.os, "environ", environ)
    assert worker.main() == 0
    assert "CAFFEONSPARK_JOB_SECRET" not in environ  # removed once read
    return calls[0]


def test_resize_flag_reaches_the_ranks_of_a_local_job(monkeypatch):
    from caffeonspark.distributed import launcher

    launch = FakeLaunch()
    monkeypatch.setattr(launcher, "launch", launch)
    assert cli.main(["train", "-solver", "s.prototxt", "-world_size", "2", "-resize"]) == 0
    assert (launch.options["world_size"], launch.options["resize"]) == (2, True)
    # The rank process reads it back from the environment the launcher gives it.
    assert run_rank(monkeypatch, CAFFEONSPARK_RESIZE="1")["resize"] is True
    assert run_rank(monkeypatch, CAFFEONSPARK_RESIZE="0")["resize"] is False


def test_encrypt_ring_flag_reaches_the_ranks_comm_options(monkeypatch):
    from caffeonspark.distributed import launcher

    launch = FakeLaunch()
    monkeypatch.setattr(launcher, "launch", launch)
    assert cli.main(["train", "-solver", "s.prototxt", "-world_size", "2"]) == 0
    assert launch.options["encrypt"] is False  # off by default
    assert cli.main(["train", "-solver", "s.prototxt", "-world_size", "2", "-encrypt_ring"]) == 0
    assert launch.options["encrypt"] is True
    for flag, encrypt in (("1", True), ("0", False)):
        options = run_rank(monkeypatch, CAFFEONSPARK_ENCRYPT_RING=flag)["comm_options"]
        assert options.encrypt is encrypt
