"""Saving and loading the Spark ML stages (MLWriter / MLReader): a folder holding the
stage's Params metadata (DefaultParamsWriter's `metadata/`), its solver.prototxt and
net.prototxt (the solver naming the net beside it) and, for a CaffeModel, model.caffemodel.
The folder is written under a temporary sibling name and renamed when whole; an existing
one is refused unless `.write().overwrite()`. Loading sets the Params back and points
solver, net (and modelUri) at the saved files. Local paths and file: URIs only.
Tests: tests/ml/test_stages.py.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

from pyspark.ml.util import DefaultParamsReader, DefaultParamsWriter, MLReader, MLWriter

from caffeonspark.atomic_file import atomic_path
from caffeonspark.ml.solver_files import NET_FILE, SOLVER_FILE, save_solver, write_solver
from caffeonspark.spark import storage

__all__ = ["StageWriter", "StageReader", "MODEL_FILE"]

MODEL_FILE = "model.caffemodel"


class StageWriter(MLWriter):
    """Writes a CaffeEstimator or CaffeModel (see the module docstring)."""

    def __init__(self, instance: Any) -> None:
        super().__init__()
        self.instance = instance

    def saveImpl(self, path: str) -> None:
        target = storage.local_path(path, "path")
        if os.path.exists(target):  # MLWriter.save removed it already when overwriting
            raise FileExistsError(f"{target} exists; use .write().overwrite().save(path)")
        stage = self.instance
        with atomic_path(target) as temp:
            os.makedirs(temp)
            DefaultParamsWriter.saveMetadata(stage, storage.hadoop_uri(temp), self.sparkSession)
            with tempfile.TemporaryDirectory() as scratch:
                net = stage.getOrDefault(stage.net) if stage.isDefined(stage.net) else None
                solver, _ = write_solver(scratch, stage.getOrDefault(stage.solver), net,
                                         owner=type(stage).__name__)
                save_solver(temp, solver)
            if getattr(stage, "_saves_weights", False):
                with storage.fetched(stage.getOrDefault(stage.modelUri), "modelUri") as local:
                    shutil.copyfile(local, os.path.join(temp, MODEL_FILE))


class StageReader(MLReader):
    """Reads what StageWriter wrote into a new instance of `cls`."""

    def __init__(self, cls: type) -> None:
        super().__init__()
        self.cls = cls

    def load(self, path: str) -> Any:
        folder = storage.local_path(path, "path")
        metadata = DefaultParamsReader.loadMetadata(storage.hadoop_uri(folder), self.sparkSession)
        stage = self.cls()
        stage._resetUid(metadata["uid"])
        DefaultParamsReader.getAndSetParams(stage, metadata)
        stage.set(stage.solver, os.path.join(folder, SOLVER_FILE))
        stage.set(stage.net, os.path.join(folder, NET_FILE))
        if getattr(stage, "_saves_weights", False):
            stage.set(stage.modelUri, os.path.join(folder, MODEL_FILE))
        return stage
