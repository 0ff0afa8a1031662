"""CaffeOnSpark's Config: the original's command-line flags (FLAGS below, one line each),
parsed the way Apache Commons CLI parses them, and checked before any work starts.

    conf = Config(["-train", "-conf", "lenet_solver.prototxt", "-model", "file:/tmp/m.caffemodel"])
    conf = Config("-train -conf lenet_solver.prototxt -model file:/tmp/m.caffemodel")
    conf = Config(train=True, conf="lenet_solver.prototxt", model="/tmp/m", cluster_size=2)
    conf = Config(spark, args)                      # the original's `new Config(sc, args)`

Parsing: single-dash flags (`-clusterSize 2`; `--clusterSize 2` and `-clusterSize=2` too);
boolean flags (-train -test -persistent -resize -ringEncryption) take no value; a flag given twice, an
unknown flag, a missing or non-integer value, or a stray word is a ConfigError naming the
flag. Keywords take the flag's name or its snake_case form (cluster_size, output_format,
image_root ...). Attributes carry the original Config's names (protoFile, modelPath,
outputPath, clusterSize, isTraining, isTest, isFeature, features, label, outputFormat,
snapshotStateFile, snapshotModelFile, isRddPersistent, ...) and snake_case aliases.

Checks when a mode (-train / -test / -features) is given: -conf names a readable solver whose
`net` (resolved from the working directory, then beside the solver) or `net_param` holds a
data layer (MemoryData, Data or CoSData) for each phase used; -model's directory must exist for
-train, the file itself for -test / -features without -train; -snapshot needs -weights and
both files must exist; -features / -label name blobs of the TEST net; -outputFormat is json
or parquet; -connection ethernet or infiniband; counts are positive; -output must not exist
yet for -test / -features (outputs are never overwritten); the captioning tools' flags
(CAPTIONING_FLAGS: those tools are not in this version) are a NotImplementedError. -model -weights -snapshot -output
are local paths, file: URIs or any URI of the cluster's Hadoop (storage.py): local ones are
checked at once; others through the session's Hadoop FileSystem, at once with Config(spark,
...), else when the driver starts (check_uris), always before training; those the
executors' engines read or write must also open with pyarrow.fs on this machine.
Our own flags beyond the original's (EXTENSION_FLAGS): -ringEncryption, which seals the
training ring's frames with AES-256-GCM (CommOptions.encrypt; docs/SPARK.md "Security on
the wire"); -tensorboard DIR, a local path where rank 0's executor writes TensorBoard event
files (docs/VISUALISE.md).
The solver and net are read with caffeonspark.model_io (FormatErrors name file and line).
Tests: tests/spark/test_config.py.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from caffeonspark import model_io, netspec
from caffeonspark.errors import ConfigError, IoError
from caffeonspark.proto import caffe_pb2
from caffeonspark.spark import storage

__all__ = [
    "Config", "FLAGS", "ORIGINAL_FLAGS", "EXTENSION_FLAGS", "CAPTIONING_FLAGS", "local_path_of",
    "DATA_LAYER_TYPES",
]

log = logging.getLogger("caffeonspark")

DATA_LAYER_TYPES = ("MemoryData", "Data", "CoSData")
# The original's image-captioning conversion tools (COCO captions -> DataFrames, vocabulary,
# embeddings) read these flags; this version does not include those tools, so a job given
# one refuses it rather than ignoring it.
CAPTIONING_FLAGS = (
    "imageRoot", "labelFile", "captionFile", "captionLength", "vocabSize", "imageCaptionDFDir",
    "vocabDir", "embeddingDFDir",
)
OUTPUT_FORMATS = ("json", "parquet")
CONNECTIONS = ("ethernet", "infiniband")


@dataclass(frozen=True)
class Flag:
    name: str
    kind: type  # bool (no value), str, int, list (comma-separated names)
    default: Any
    help: str


# The original CaffeOnSpark's flags, then ours (EXTENSION_FLAGS), kept apart so that the
# original set stays checkable (tests/spark/test_config.py); FLAGS holds both.
ORIGINAL_FLAGS: dict[str, Flag] = {
    f.name: f
    for f in (
        Flag("conf", str, None, "solver prototxt (its net: is read beside it)"),
        Flag("train", bool, False, "training mode"),
        Flag("test", bool, False, "test mode: each test output's mean over the source"),
        Flag("features", list, [], "comma-separated blob names to extract per sample"),
        Flag("label", str, None, "label blob to output next to the features"),
        Flag("outputFormat", str, "json", "json or parquet (features / test output)"),
        Flag("model", str, None, "model path: written by -train, read by -test/-features"),
        Flag("output", str, "output", "where features or test results are written"),
        Flag("devices", int, 1, "GPUs per executor"),
        Flag("persistent", bool, False, "persist the training data (disk) between passes"),
        Flag("snapshot", str, None, ".solverstate to resume from (needs -weights)"),
        Flag("weights", str, None, ".caffemodel to start from"),
        Flag("connection", str, "infiniband", "ethernet or infiniband"),
        Flag("resize", bool, False, "resize images to the data layer's height x width"),
        Flag("clusterSize", int, 1, "number of ranks (executors)"),
        Flag("lmdb_partitions", int, None, "partitions of file sources (default clusterSize)"),
        Flag("imageRoot", str, None, "captioning tools: image folder"),
        Flag("labelFile", str, None, "captioning tools: label file"),
        Flag("captionFile", str, None, "captioning tools: caption JSON"),
        Flag("captionLength", int, 20, "captioning tools: words per caption"),
        Flag("vocabSize", int, -1, "captioning tools: vocabulary size (-1: all)"),
        Flag("imageCaptionDFDir", str, None, "captioning tools: image-caption DataFrame"),
        Flag("vocabDir", str, None, "captioning tools: vocabulary folder"),
        Flag("embeddingDFDir", str, None, "captioning tools: embedding DataFrame"),
    )
}
EXTENSION_FLAGS: dict[str, Flag] = {
    f.name: f
    for f in (
        Flag("ringEncryption", bool, False,
             "authenticate and encrypt the ranks' ring traffic (AES-256-GCM, libcrypto.so.3)"),
        Flag("tensorboard", str, None,
             "local folder rank 0's executor writes TensorBoard event files to (on a "
             "cluster: a shared mount)"),
    )
}
FLAGS: dict[str, Flag] = {**ORIGINAL_FLAGS, **EXTENSION_FLAGS}


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


_KEYWORDS = {**{_snake(n): n for n in FLAGS}, **{n: n for n in FLAGS}}


def local_path_of(uri: str, flag: str) -> str:
    """An absolute local path for a plain path or a file: URI; other schemes are refused
    (file data sources are read where they are; models and outputs go through storage.py)."""
    if not storage.is_local(uri):
        raise ConfigError(
            f"-{flag}: '{uri}' is not a local path; file data sources (LMDB, SequenceFile, "
            "NumPy, Arrow) are read from local (or mounted shared) paths and file: URIs"
        )
    return storage.local_path(uri, flag)


def _convert(flag: Flag, value: Any, given_as: str) -> Any:
    if flag.kind is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{given_as} is a switch and takes no value (got {value!r})")
    if flag.kind is int:
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{given_as} wants an integer, got {value!r}") from None
    if flag.kind is list:
        items = value.split(",") if isinstance(value, str) else list(value)
        names = [str(item).strip() for item in items if str(item).strip()]
        if not names:
            raise ConfigError(f"{given_as} wants comma-separated blob names, got {value!r}")
        return names
    return str(value)


def parse_args(argv: Sequence[str]) -> dict[str, Any]:
    """flag name -> value, as Apache Commons CLI reads `-flag value` / `-switch`."""
    values: dict[str, Any] = {}
    i = 0
    argv = list(argv)
    while i < len(argv):
        token = argv[i]
        if not token.startswith("-") or token in ("-", "--"):
            previous = argv[i - 1] if i else ""
            hint = ""
            name = previous.lstrip("-")
            if name in FLAGS and FLAGS[name].kind is bool:
                hint = f" ({previous} is a switch and takes no value)"
            raise ConfigError(f"unexpected argument '{token}'{hint}")
        name = token[2:] if token.startswith("--") else token[1:]
        value: Any = None
        if "=" in name:
            name, value = name.split("=", 1)
        flag = FLAGS.get(name)
        if flag is None:
            raise ConfigError(
                f"Unrecognized option: {token} (CaffeOnSpark flags: "
                + " ".join(f"-{n}" for n in FLAGS)
                + ")"
            )
        if name in values:
            raise ConfigError(f"-{name} is given twice")
        if flag.kind is bool:
            if value is not None:
                raise ConfigError(f"-{name} is a switch and takes no value (got '{value}')")
            values[name] = True
        else:
            if value is None:
                if i + 1 >= len(argv) or (
                    argv[i + 1].startswith("-") and not re.fullmatch(r"-\d+", argv[i + 1])
                ):
                    raise ConfigError(f"Missing argument for option: -{name}")
                i += 1
                value = argv[i]
            values[name] = _convert(flag, value, f"-{name}")
        i += 1
    return values


class Config:
    """CaffeOnSpark's configuration: flags, the solver and net they name, and the checks."""

    def __init__(
        self, *args: Any, spark: Any = None, validate: bool = True, **options: Any
    ) -> None:
        argv: Sequence[str] | str | None = None
        rest = list(args)
        if rest and not isinstance(rest[0], (str, list, tuple)) and rest[0] is not None:
            spark = rest.pop(0)
        if rest:
            argv = rest.pop(0)
        if rest:
            raise TypeError("Config([spark,] args=None, **flags) takes at most two positionals")
        if isinstance(argv, str):
            argv = shlex.split(argv)
        values = parse_args(argv or [])
        for key, value in options.items():
            name = _KEYWORDS.get(key)
            if name is None:
                raise ConfigError(f"Config: unknown flag keyword '{key}'")
            if name in values:
                raise ConfigError(f"-{name} is given twice (argument list and keyword {key})")
            if value is not None and value is not False:
                values[name] = _convert(FLAGS[name], value, f"-{name}")
        self._values = {name: values.get(name, flag.default) for name, flag in FLAGS.items()}
        self.given = frozenset(values)
        self.spark = spark
        self.solver_param: caffe_pb2.SolverParameter | None = None
        self.net_param: caffe_pb2.NetParameter | None = None
        self.solver_path: str | None = None
        self.net_path: str | None = None
        self._pending: list[tuple[str, str, str, str, str | None]] = []  # URIs to check
        self._check_values()
        if self.protoFile is not None:
            self._read_solver()
        if validate and self.has_mode:
            self._check_mode()

    # -- flags ---------------------------------------------------------------------------

    def __getattr__(self, name: str) -> Any:
        values = self.__dict__.get("_values")
        if values is not None:
            flag = _KEYWORDS.get(name)
            if flag is not None:
                return values[flag]
        raise AttributeError(f"Config has no attribute '{name}'")

    def __repr__(self) -> str:
        given = " ".join(
            f"-{n}" if FLAGS[n].kind is bool else f"-{n} {self._values[n]}"
            for n in FLAGS
            if n in self.given
        )
        return f"Config({given!r})"

    def _check_values(self) -> None:
        v = self._values
        fmt = str(v["outputFormat"]).lower()
        if fmt not in OUTPUT_FORMATS:
            raise ConfigError(f"-outputFormat must be json or parquet, got '{v['outputFormat']}'")
        v["outputFormat"] = fmt
        connection = str(v["connection"]).lower()
        if connection not in CONNECTIONS:
            raise ConfigError(
                f"-connection must be ethernet or infiniband, got '{v['connection']}'"
            )
        v["connection"] = connection
        for name in ("clusterSize", "devices", "lmdb_partitions", "captionLength"):
            if v[name] is not None and v[name] < 1:
                raise ConfigError(f"-{name} must be at least 1, got {v[name]}")
        if v["snapshot"] and not v["weights"]:
            raise ConfigError(
                "-snapshot needs -weights: give the .caffemodel written with the .solverstate"
            )

    # The original Config's names.
    @property
    def protoFile(self) -> str | None:
        return self._values["conf"]

    @property
    def modelPath(self) -> str | None:
        return self._values["model"]

    @property
    def outputPath(self) -> str:
        return self._values["output"]

    @property
    def isTraining(self) -> bool:
        return bool(self._values["train"])

    @property
    def isTest(self) -> bool:
        return bool(self._values["test"])

    @property
    def isFeature(self) -> bool:
        return bool(self._values["features"])

    @property
    def isRddPersistent(self) -> bool:
        return bool(self._values["persistent"])

    @property
    def snapshotStateFile(self) -> str | None:
        return self._values["snapshot"]

    @property
    def snapshotModelFile(self) -> str | None:
        return self._values["weights"]

    @property
    def lmdbPartitions(self) -> int:
        return int(self._values["lmdb_partitions"] or self._values["clusterSize"])

    @property
    def has_mode(self) -> bool:
        return self.isTraining or self.isTest or self.isFeature

    proto_file = protoFile
    model_path = modelPath
    output_path = outputPath
    is_training = isTraining
    is_test = isTest
    is_feature = isFeature
    is_rdd_persistent = isRddPersistent
    snapshot_state_file = snapshotStateFile
    snapshot_model_file = snapshotModelFile

    # -- solver and net ------------------------------------------------------------------

    def _read_solver(self) -> None:
        path = os.fspath(self.protoFile)
        if path.startswith("file:"):
            path = local_path_of(path, "conf")
        if not os.path.isfile(path):
            raise IoError(f"-conf: solver file '{self.protoFile}' does not exist")
        self.solver_path = os.path.abspath(path)
        param = model_io.read_solver_prototxt(path)
        given = [f for f in ("train_net", "train_net_param") if param.HasField(f)]
        given += [f for f in ("test_net", "test_net_param") if len(getattr(param, f))]
        if given:
            raise ConfigError(
                f"-conf {path}: CaffeOnSpark trains and tests one net: name it with `net` "
                f"or `net_param`, not `{given[0]}`"
            )
        if param.HasField("net_param"):
            net = caffe_pb2.NetParameter()
            net.CopyFrom(param.net_param)
        elif param.HasField("net"):
            self.net_path = self._beside_solver(param.net, "net")
            net = model_io.read_net_prototxt(self.net_path)
        else:
            raise ConfigError(f"-conf {path}: the solver names no net (`net` or `net_param`)")
        weights = [self._beside_solver(w.strip(), "weights") for w in param.weights if w.strip()]
        del param.weights[:]
        param.weights.extend(weights)
        self.solver_param = param
        self.net_param = net

    def _beside_solver(self, path: str, what: str) -> str:
        """Caffe's rule: relative to the working directory, then beside the solver."""
        if path.startswith("file:"):
            path = local_path_of(path, "conf")
        if os.path.isabs(path) or os.path.exists(path):
            if not os.path.exists(path):
                raise IoError(f"-conf {self.solver_path}: its {what} '{path}' does not exist")
            return os.path.abspath(path)
        beside = os.path.join(os.path.dirname(self.solver_path or ""), path)
        if os.path.exists(beside):
            return beside
        raise IoError(
            f"-conf {self.solver_path}: its {what} '{path}' exists neither relative to the "
            f"working directory ({os.getcwd()}) nor beside the solver"
        )

    def net_state(self, phase: int) -> caffe_pb2.NetState:
        return netspec.net_state_for(self._solver(), phase, net=self.net_param)

    def phase_net(self, phase: int) -> caffe_pb2.NetParameter:
        """The net filtered for `phase` (TRAIN with train_state, TEST with test_state[0])."""
        return netspec.filter_net(self._net(), self.net_state(phase))

    def data_layer(self, phase: int) -> caffe_pb2.LayerParameter:
        """The phase's first data layer (MemoryData, Data or CoSData): what the Spark
        source feeds."""
        for layer in self.phase_net(phase).layer:
            if layer.type in DATA_LAYER_TYPES:
                return layer
        name = caffe_pb2.Phase.Name(phase)
        raise ConfigError(
            f"-conf {self.solver_path}: the net has no {name} data layer "
            f"({' or '.join(DATA_LAYER_TYPES)}) for the Spark source to feed"
        )

    def solver_with_net(self) -> caffe_pb2.SolverParameter:
        """A copy of the solver with the net inline (`net_param`), for the executors."""
        param = caffe_pb2.SolverParameter()
        param.CopyFrom(self._solver())
        param.ClearField("net")
        param.net_param.CopyFrom(self._net())
        return param

    def _solver(self) -> caffe_pb2.SolverParameter:
        if self.solver_param is None:
            raise ConfigError("-conf is required: name the solver prototxt")
        return self.solver_param

    def _net(self) -> caffe_pb2.NetParameter:
        self._solver()
        return self.net_param  # type: ignore[return-value]  # read with the solver

    # -- checks --------------------------------------------------------------------------

    def _check_mode(self) -> None:
        captioning = [f"-{name}" for name in CAPTIONING_FLAGS if name in self.given]
        if captioning:
            raise NotImplementedError(
                f"{', '.join(captioning)}: these flags belong to CaffeOnSpark's image-captioning "
                "conversion tools (COCO captions, vocabulary, embeddings), which this version does "
                "not include; a -train / -test / -features job does not read them, so drop them"
            )
        if self.protoFile is None:
            raise ConfigError("-conf is required with -train, -test or -features")
        if self.isTest and self.isFeature:
            raise ConfigError("give -test or -features, not both: each writes to -output")
        if not self.modelPath:
            raise ConfigError(
                "-model is required: where -train writes the model, or -test / -features read it"
            )
        model = self.modelPath
        if self.isTraining:
            self.data_layer(caffe_pb2.TRAIN)
            folder = storage.parent(storage.normalize(model, "model"))
            self._check_path(folder, "dir", "model", f"-model: directory '{folder}' does not exist",
                             executors_open=model)
        else:
            self._check_path(
                model, "file", "model", f"-model: '{model}' does not exist (train it with -train)"
            )
        for flag in ("weights", "snapshot"):
            if self._values[flag]:
                value = self._values[flag]
                self._check_path(value, "file", flag, f"-{flag}: '{value}' does not exist")
        if self.isTest or self.isFeature:
            test_net = self.phase_net(caffe_pb2.TEST)
            self.data_layer(caffe_pb2.TEST)
            blobs = {top for layer in test_net.layer for top in layer.top}
            for flag, names in (("features", self.features), ("label", [self.label])):
                for name in names:
                    if name and name not in blobs:
                        raise ConfigError(
                            f"-{flag}: the TEST net has no blob '{name}' (blobs: "
                            f"{', '.join(sorted(blobs))})"
                        )
            self._check_path(
                self.outputPath, "absent", "output",
                f"-output: '{self.outputPath}' exists; remove it or name another path "
                "(outputs are never overwritten)",
            )

    def _check_path(
        self, uri: str, want: str, flag: str, message: str, executors_open: str | None = None
    ) -> None:
        """`want` is "file", "dir" or "absent". Local paths are checked here; other URIs
        through Spark's Hadoop FileSystem once a session is known (check_uris), and those
        the executors read or write must open with pyarrow.fs (storage.arrow_filesystem)."""
        if storage.is_local(uri):
            path = storage.local_path(uri, flag)
            ok = {"file": os.path.isfile, "dir": os.path.isdir}.get(want)
            if ok is not None and not ok(path):
                raise IoError(message)
            if want == "absent" and os.path.exists(path):
                raise ConfigError(message)
            return
        opened_by = None
        if flag != "output":  # the executors' engines read or write it, through pyarrow.fs
            opened_by = executors_open or uri
            try:
                storage.arrow_filesystem(opened_by, flag)  # an unknown scheme fails here
            except storage.SchemeUnavailable:
                pass  # this machine lacks it; whether the executors do: check_uris
        self._pending.append((uri, want, flag, message, opened_by))
        if self.spark is not None:
            self.check_uris(self.spark)

    def check_uris(self, spark: Any) -> None:
        """The checks of URIs other than local paths, through the session's Hadoop
        FileSystem (Config made without a session leaves them to the driver). A URI the
        executors open with pyarrow.fs that this machine cannot open (no libhdfs, no
        credentials) is an error on a local master, else a warning: the executors are
        other machines."""
        if not self._pending:
            return
        files = storage.HadoopFiles(spark)
        here = _executors_share_this_machine(spark)
        pending, self._pending = self._pending, []
        for uri, want, flag, message, opened_by in pending:
            try:
                if opened_by is not None:
                    storage.arrow_filesystem(opened_by, flag)
                if want == "absent":
                    # Spark's writer needs a Hadoop FileSystem: no pyarrow fallback
                    found = not files.exists(uri)
                else:
                    kind = files.kind(uri, flag)
                    # object stores have no folders until written: an absent one passes
                    found = kind == want or (want == "dir" and kind is None
                                             and storage.scheme_of(uri) in storage.OBJECT_STORES)
            except storage.SchemeUnavailable as err:
                if here:
                    raise
                log.warning("%s; checked on the driver: the executors must have it", err)
                continue
            except IoError as err:
                text = str(err)
                raise IoError(text if text.startswith(f"-{flag}:") else f"-{flag}: {text}") from None
            if not found:
                raise (ConfigError if want == "absent" else IoError)(message)


def _executors_share_this_machine(spark: Any) -> bool:
    """A local master: the executors are this process's machine (and its libraries)."""
    return str(getattr(spark, "sparkContext", spark).master).startswith("local")
