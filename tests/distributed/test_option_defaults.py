"""The option defaults have one home, the engine's C++ structs (cpp/comm/tcp_transport.h
TcpOptions, cpp/comm/ucx_transport.h UcxOptions, cpp/comm/collective.h CollectiveOptions, cpp/solver/data_parallel.h
DataParallelOptions): the Python dataclasses cover every native field and agree on every
default, and the values users set reach the native structs."""

from __future__ import annotations

import dataclasses

from caffeonspark._native import _engine
from caffeonspark.distributed.comm import NATIVE_FIELDS, NATIVE_STRUCTS, CommOptions
from caffeonspark.distributed.data_parallel import DataParallelOptions


def native_fields(struct: type) -> dict[str, object]:
    """A bound option struct's fields (its read-write properties) and their defaults."""
    default = struct()
    return {
        name: getattr(default, name)
        for name, member in vars(struct).items()
        if isinstance(member, property) and member.fset is not None
    }


def python_fields(cls: type) -> dict[str, object]:
    return {field.name: field.default for field in dataclasses.fields(cls)}


def test_comm_options_cover_the_native_structs_with_their_defaults():
    assert set(NATIVE_STRUCTS) == {"tcp", "ucx", "collective"}
    assert NATIVE_STRUCTS["ucx"] is _engine.UcxOptions
    assert NATIVE_STRUCTS["tcp"] is _engine.TcpOptions
    assert NATIVE_STRUCTS["collective"] is _engine.CollectiveOptions
    mapped = set(NATIVE_FIELDS.values())
    assert len(mapped) == len(NATIVE_FIELDS), "two CommOptions fields set the same native one"
    for key, struct in NATIVE_STRUCTS.items():
        fields = native_fields(struct)
        assert fields, f"{struct.__name__} binds no fields"
        assert {(key, name) for name in fields} <= mapped, (
            f"{struct.__name__} field not in CommOptions"
        )
    assert set(python_fields(CommOptions)) == set(NATIVE_FIELDS)
    for field, default in python_fields(CommOptions).items():
        key, name = NATIVE_FIELDS[field]
        native = native_fields(NATIVE_STRUCTS[key])[name]
        assert default == native and type(default) is type(native), (field, default, native)


def test_comm_options_reach_the_native_structs():
    chosen = CommOptions(
        timeout=7.5,
        heartbeat=0.25,
        hello_timeout=0.75,
        handshake_timeout=1.5,
        max_frame_bytes=12345,
        socket_buffer_bytes=0,
        segment_bytes=4096,
        window=3,
        send_thread=False,
    )
    structs = chosen.native_kwargs()
    assert set(structs) == set(NATIVE_STRUCTS)
    for field, (key, name) in NATIVE_FIELDS.items():
        assert getattr(structs[key], name) == getattr(chosen, field), field


def test_data_parallel_options_match_the_native_struct():
    native = native_fields(_engine.DataParallelOptions)
    ours = python_fields(DataParallelOptions)
    assert set(ours) == set(native)
    for name, default in ours.items():
        assert default == native[name] and type(default) is type(native[name]), name
    chosen = DataParallelOptions(first_bucket_bytes=4096, bucket_bytes=65536, check_params=True)
    built = chosen.native()
    for name in native:
        assert getattr(built, name) == getattr(chosen, name), name
