"""Progress bars for long conversions: tqdm on stderr, shown only on a terminal by default.

`progress(iterable, total, desc, enabled)`: enabled=None shows the bar when stderr is a
terminal (quiet in logs, CI and tests), True / False force it.
Tests: tests/data/test_convert_imageset.py (converters run with it).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

__all__ = ["progress"]

T = TypeVar("T")


def progress(
    iterable: Iterable[T], total: int | None = None, desc: str = "", enabled: bool | None = None
) -> Iterator[T]:
    return iter(
        tqdm(
            iterable,
            total=total,
            desc=desc,
            unit=" rec",
            file=sys.stderr,
            mininterval=1.0,
            disable=None if enabled is None else not enabled,
            dynamic_ncols=True,
        )
    )
