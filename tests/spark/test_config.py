"""Config (python/caffeonspark/spark/config.py): every flag of the original (FLAGS.md) parsed
like Apache Commons CLI, keywords and snake_case aliases, the original's attribute names, the
solver and net read and resolved, and each bad input a clear error naming the flag. No Spark
is started here."""

from __future__ import annotations

import pytest
from spark_util import write_lenet

from caffeonspark import errors
from caffeonspark.proto import caffe_pb2
from caffeonspark.spark.config import EXTENSION_FLAGS, FLAGS, ORIGINAL_FLAGS, Config

ORIGINAL_NAMES = (
    "train test features label conf model output devices clusterSize snapshot weights resize "
    "persistent outputFormat connection lmdb_partitions imageRoot labelFile captionFile "
    "captionLength vocabSize imageCaptionDFDir vocabDir embeddingDFDir"
).split()


@pytest.fixture
def lenet(tmp_path, anchors):
    solver = write_lenet(tmp_path, anchors, "memory", "file:/data/train", "file:/data/test")
    (tmp_path / "lenet.model").write_bytes(b"")
    return tmp_path, str(solver)


def test_every_original_flag_is_known():
    assert sorted(ORIGINAL_FLAGS) == sorted(ORIGINAL_NAMES)
    # ours are kept apart, and FLAGS (what the parser knows) is exactly both
    assert not set(EXTENSION_FLAGS) & set(ORIGINAL_NAMES)
    assert FLAGS == {**ORIGINAL_FLAGS, **EXTENSION_FLAGS}
    assert sorted(EXTENSION_FLAGS) == ["ringEncryption", "tensorboard"]


def test_ring_encryption_flag_is_off_by_default():
    assert Config("-clusterSize 2").ringEncryption is False
    assert Config("-clusterSize 2 -ringEncryption").ringEncryption is True
    assert Config(ring_encryption=True).ringEncryption is True


def test_tensorboard_flag_takes_a_folder():
    assert Config("-clusterSize 2").tensorboard is None
    assert Config("-clusterSize 2 -tensorboard runs/lenet").tensorboard == "runs/lenet"
    assert Config(tensorboard="/tmp/tb").tensorboard == "/tmp/tb"


def test_flags_parse_like_commons_cli(lenet):
    root, solver = lenet
    conf = Config(
        f"-train -persistent -resize -conf {solver} -model file:{root}/lenet.model "
        "-clusterSize 3 --devices 2 -outputFormat=Parquet -connection ethernet "
        "-lmdb_partitions 6 -features ip1,ip2 -label label"
    )
    assert conf.isTraining and not conf.isTest and conf.isFeature
    assert conf.isRddPersistent and conf.resize
    assert (conf.clusterSize, conf.cluster_size, conf.devices) == (3, 3, 2)
    assert conf.outputFormat == conf.output_format == "parquet"
    assert conf.features == ["ip1", "ip2"] and conf.label == "label"
    assert conf.lmdb_partitions == conf.lmdbPartitions == 6
    assert conf.protoFile == conf.proto_file == solver
    assert conf.modelPath == f"file:{root}/lenet.model"
    assert conf.outputPath == "output"


def test_captioning_flags_parse_but_a_job_refuses_them(lenet):
    root, solver = lenet
    conf = Config("-imageRoot /img -captionLength 30")  # no mode: a value, nothing runs
    assert (conf.imageRoot, conf.image_root, conf.captionLength) == ("/img", "/img", 30)
    assert conf.vocabSize == -1
    with pytest.raises(NotImplementedError, match=r"-imageRoot, -vocabSize: these flags belong "
                       r"to CaffeOnSpark's image-captioning conversion tools"):
        Config(f"-train -conf {solver} -model file:{root}/lenet.model -imageRoot /img "
               "-vocabSize 5")


def test_defaults_and_keywords(lenet):
    root, solver = lenet
    conf = Config(train=True, conf=solver, model=str(root / "m"), cluster_size=2, outputFormat="json")
    assert conf.clusterSize == 2 and conf.lmdbPartitions == 2
    assert (conf.devices, conf.connection, conf.outputFormat) == (1, "infiniband", "json")
    assert not conf.resize and not conf.isRddPersistent and conf.snapshotStateFile is None
    assert Config(f"-conf {solver}").has_mode is False  # tools use Config without a mode


def test_solver_and_net_are_read_and_resolved(lenet, monkeypatch):
    root, solver = lenet
    monkeypatch.chdir("/")  # the net is found beside the solver, not in the working directory
    conf = Config(["-train", "-conf", solver, "-model", str(root / "m")])
    assert conf.net_path == str(root / "lenet_memory_train_test.prototxt")
    assert conf.solver_param.max_iter == 2000 and conf.net_param.name == "LeNet"
    train, test = conf.data_layer(caffe_pb2.TRAIN), conf.data_layer(caffe_pb2.TEST)
    assert train.memory_data_param.batch_size == 64 and test.memory_data_param.batch_size == 100
    inline = conf.solver_with_net()
    assert not inline.HasField("net") and len(inline.net_param.layer) == len(conf.net_param.layer)


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        ("-train -bogus 1", errors.ConfigError, r"Unrecognized option: -bogus"),
        ("-train -conf", errors.ConfigError, r"Missing argument for option: -conf"),
        ("-train -model -conf x", errors.ConfigError, r"Missing argument for option: -model"),
        ("-clusterSize two", errors.ConfigError, r"-clusterSize wants an integer, got 'two'"),
        ("-clusterSize 0", errors.ConfigError, r"-clusterSize must be at least 1"),
        ("-train true", errors.ConfigError, r"unexpected argument 'true' \(-train is a switch"),
        ("-train=yes", errors.ConfigError, r"-train is a switch and takes no value"),
        ("-model a -model b", errors.ConfigError, r"-model is given twice"),
        ("-snapshot s.solverstate", errors.ConfigError, r"-snapshot needs -weights"),
        ("-outputFormat csv", errors.ConfigError, r"-outputFormat must be json or parquet"),
        ("-connection rdma", errors.ConfigError, r"-connection must be ethernet or infiniband"),
        ("-features ,", errors.ConfigError, r"-features wants comma-separated blob names"),
        ("-train -conf /nowhere/s.prototxt", errors.IoError, r"-conf: solver file '/nowhere"),
    ],
)
def test_bad_flags_name_the_flag(args, error, message):
    with pytest.raises(error, match=message):
        Config(args)


@pytest.mark.parametrize(
    ("extra", "error", "message"),
    [
        ("-train", errors.ConfigError, r"-model is required"),
        ("-train -model gopher://h/m", errors.IoError,
         r"-model: cannot open 'gopher://h/m': neither pyarrow nor fsspec opens gopher:"),
        ("-train -model /nowhere/m", errors.IoError, r"-model: directory '/nowhere' does not"),
        ("-test -model {root}/missing", errors.IoError, r"-model: '.*missing' does not exist"),
        ("-features ip2 -test -model {root}/lenet.model", errors.ConfigError, "not both"),
        ("-features nope -model {root}/lenet.model", errors.ConfigError,
         r"-features: the TEST net has no blob 'nope' \(blobs: accuracy, .*ip2"),
        ("-features ip2 -label lbl -model {root}/lenet.model", errors.ConfigError,
         r"-label: the TEST net has no blob 'lbl'"),
        ("-train -model {root}/m -weights {root}/w.caffemodel", errors.IoError,
         r"-weights: '.*w.caffemodel' does not exist"),
        ("-test -model {root}/lenet.model -output {root}", errors.ConfigError,
         r"-output: '.*' exists"),
    ],
)
def test_mode_checks_name_the_flag(lenet, extra, error, message):
    root, solver = lenet
    with pytest.raises(error, match=message):
        Config(f"-conf {solver} " + extra.format(root=root))


def test_solver_problems_name_the_file(tmp_path):
    solver = tmp_path / "s.prototxt"
    solver.write_text('net: "absent.prototxt"\n')
    with pytest.raises(errors.IoError, match=r"its net 'absent.prototxt' exists neither"):
        Config(["-train", "-conf", str(solver), "-model", str(tmp_path / "m")])
    solver.write_text('train_net: "a.prototxt"\n')
    with pytest.raises(errors.ConfigError, match=r"one net: name it with `net`.*`train_net`"):
        Config(["-train", "-conf", str(solver), "-model", str(tmp_path / "m")])
    solver.write_text("base_lr: oops\n")
    with pytest.raises(errors.FormatError, match=r"s.prototxt:1"):
        Config(["-conf", str(solver)])
    solver.write_text('net_param { name: "n" layer { name: "ip" type: "InnerProduct" } }\n')
    with pytest.raises(errors.ConfigError, match=r"the net has no TRAIN data layer"):
        Config(["-train", "-conf", str(solver), "-model", str(tmp_path / "m")])


def test_cos_data_nets_feed_from_their_cos_data_layers(anchors, tmp_path):
    solver = anchors / "caffeonspark" / "lenet_cos_solver.prototxt"
    conf = Config(["-train", "-conf", str(solver), "-model", str(tmp_path / "m")])
    for phase, folder in ((caffe_pb2.TRAIN, "mnist_train"), (caffe_pb2.TEST, "mnist_test")):
        layer = conf.data_layer(phase)
        assert layer.type == "CoSData" and folder in layer.cos_data_param.source
        assert [top.name for top in layer.cos_data_param.top] == ["data", "label"]


def test_uris_wait_for_the_session_that_checks_them(lenet):
    root, solver = lenet
    conf = Config(f"-conf {solver} -test -model hdfs://nn/m -weights hdfs://nn/w "
                  "-output hdfs://nn/out")
    assert [(uri, want) for uri, want, *_ in conf._pending] == [
        ("hdfs://nn/m", "file"), ("hdfs://nn/w", "file"), ("hdfs://nn/out", "absent")]
    conf = Config(f"-conf {solver} -train -model hdfs://nn/models/m")
    assert [(uri, want) for uri, want, *_ in conf._pending] == [("hdfs://nn/models", "dir")]
