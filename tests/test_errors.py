"""The error taxonomy is listed once, in cpp/core/errors.h (COS_ERROR_TYPES):
caffeonspark.errors has exactly those classes with the same hierarchy, and each C++ type
raised through the binding arrives as its Python class (an unknown name rebuilt from a
feeder's error is an IoError)."""

from __future__ import annotations

import pytest

from caffeonspark import errors
from caffeonspark._native import _engine

NATIVE_TYPES = dict(_engine.error_types())  # name -> base name; "Error" is the root


def python_class(native_name: str) -> type:
    return errors.CaffeOnSparkError if native_name == "Error" else getattr(errors, native_name)


def test_python_classes_are_the_native_list():
    ours = {
        name
        for name, value in vars(errors).items()
        if isinstance(value, type)
        and issubclass(value, errors.CaffeOnSparkError)
        and value is not errors.CaffeOnSparkError
    }
    assert ours == set(NATIVE_TYPES)
    assert len(NATIVE_TYPES) == len(_engine.error_types()), "a name listed twice"


@pytest.mark.parametrize("name", sorted(NATIVE_TYPES))
def test_same_hierarchy(name):
    cls = getattr(errors, name)
    taxonomy_bases = [b for b in cls.__bases__ if issubclass(b, errors.CaffeOnSparkError)]
    assert taxonomy_bases == [python_class(NATIVE_TYPES[name])]


def test_peer_timeout_is_a_comm_error():
    assert NATIVE_TYPES["PeerTimeout"] == "CommError"
    assert issubclass(errors.PeerTimeout, errors.CommError)


@pytest.mark.parametrize("name", sorted(NATIVE_TYPES))
def test_each_native_type_arrives_as_its_class(name):
    queue = _engine.BatchQueue("probe: ", 1)
    queue.close(name, f"thrown as {name}")  # the engine rethrows it as that C++ type
    with pytest.raises(getattr(errors, name), match=f"thrown as {name}") as caught:
        queue.pop(1.0)
    assert type(caught.value) is getattr(errors, name)


def test_unknown_name_is_an_io_error():
    queue = _engine.BatchQueue("probe: ", 1)
    queue.close("NoSuchError", "the source went away")
    with pytest.raises(errors.IoError, match="the source went away") as caught:
        queue.pop(1.0)
    assert type(caught.value) is errors.IoError
