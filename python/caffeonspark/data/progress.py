"""Progress bars for long CLI work: tqdm on stderr, shown only on a terminal by default.

The one home of the terminal decision: `progress(iterable, total, desc, enabled, unit)`
wraps an iterable; `progress_bar(total, desc, enabled, unit)` is a bar updated by hand
(training, from the solver's display callback); `shown(enabled)` is the decision itself. enabled=None shows the bar when stderr is
a terminal (quiet in logs, CI, pipes and tests: not one bar character), True / False force
it. `unit` defaults to records, the data verbs' unit.
Tests: tests/data/test_convert_imageset.py (converters run with it), tests/cli/test_progress.py.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

__all__ = ["progress", "progress_bar", "shown"]

T = TypeVar("T")


def shown(enabled: bool | None = None) -> bool:
    """Whether a bar is drawn: `enabled`, or when None whether stderr is a terminal."""
    if enabled is not None:
        return enabled
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty())


def progress_bar(
    total: int | None = None, desc: str = "", enabled: bool | None = None, unit: str = " rec",
    iterable: Iterable | None = None,
) -> tqdm:
    return tqdm(
        iterable,
        total=total,
        desc=desc,
        unit=unit,
        file=sys.stderr,
        mininterval=1.0,
        disable=not shown(enabled),
        dynamic_ncols=True,
    )


def progress(
    iterable: Iterable[T], total: int | None = None, desc: str = "", enabled: bool | None = None,
    unit: str = " rec",
) -> Iterator[T]:
    return iter(progress_bar(total, desc, enabled, unit, iterable))
