"""FeedOptions (python/caffeonspark/data/feed_options.py): the defaults are one process
reading everything, invalid values are ValueErrors at construction, values are normalised
and frozen; shard_rule.rank_feed_options gives a rank's options on both paths."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from caffeonspark.data.feed_options import FeedOptions
from caffeonspark.data.shard_rule import rank_feed_options


def test_defaults_are_one_process_reading_everything():
    feed = FeedOptions()
    assert (feed.rank, feed.world_size, feed.shuffle_shard) == (0, 1, None)
    assert (feed.shuffle, feed.seed, feed.remainder) == (True, 0, "drop")
    assert (feed.resize, feed.decode_threads) == (False, 2)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"rank": 3, "world_size": 3}, r"rank 3 is not in \[0, world_size=3\)"),
        ({"rank": -1}, r"rank -1 is not in"),
        ({"world_size": 0}, r"world_size=0"),
        ({"remainder": "keep"}, r"remainder must be one of .*'keep'"),
        ({"shuffle_shard": (2, 2)}, r"shuffle_shard rank 2 is not in \[0, world_size=2\)"),
        ({"decode_threads": 0}, r"decode threads must be >= 1, got 0"),
    ],
)
def test_invalid_values_are_value_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        FeedOptions(**kwargs)


def test_values_are_normalised_and_frozen():
    feed = FeedOptions(rank=np.int64(1), world_size=np.int64(2), shuffle_shard=[1, 4])
    assert type(feed.rank) is int and feed.shuffle_shard == (1, 4)
    assert feed == FeedOptions(rank=1, world_size=2, shuffle_shard=(1, 4))
    with pytest.raises(dataclasses.FrozenInstanceError):
        feed.resize = True  # type: ignore[misc]


def test_rank_feed_options_follow_the_shard_rule():
    launcher = rank_feed_options(-1, 1, 3, presharded=False)
    assert launcher == FeedOptions(rank=1, world_size=3, seed=0)
    spark = rank_feed_options(7, 1, 3, presharded=True, resize=True)
    assert spark == FeedOptions(seed=7, shuffle_shard=(1, 3), resize=True)
