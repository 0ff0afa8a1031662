"""`caffeonspark train -world_size 2 -tensorboard DIR`: rank 0 writes the event files,
with the allreduce tags of the launcher's ring."""

from __future__ import annotations

from lenet_files_viz import write_small_lenet
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from caffeonspark import cli


def test_two_ranks_write_allreduce_tags(tmp_path):
    solver, _ = write_small_lenet(tmp_path, max_iter=10)
    events = tmp_path / "runs"
    assert cli.main(["train", "-solver", str(solver), "-world_size", "2", "-threads", "1",
                     "-tensorboard", str(events)]) == 0
    files = list(events.iterdir())
    assert len(files) == 1 and files[0].name.startswith("events.out.tfevents")  # rank 0 only
    accumulator = EventAccumulator(str(events), size_guidance={"scalars": 0})
    accumulator.Reload()
    tags = accumulator.Tags()["scalars"]
    for tag in ("allreduce/seconds", "allreduce/wait_seconds", "allreduce/hidden_fraction"):
        assert [e.step for e in accumulator.Scalars(tag)] == [0, 5]
    for event in accumulator.Scalars("allreduce/hidden_fraction"):
        assert 0.0 <= event.value <= 1.0
    assert all(e.value > 0 for e in accumulator.Scalars("allreduce/seconds"))
    # both ranks' images: 2 x 64 per iteration
    speed = [e.value for e in accumulator.Scalars("iters_per_second")]
    images = [e.value for e in accumulator.Scalars("images_per_second")]
    assert [round(i / s) for i, s in zip(images[1:], speed[1:], strict=True)] == [128]
    assert "train/loss" in tags and [e.step for e in accumulator.Scalars("test/accuracy")] == [
        0, 10]
