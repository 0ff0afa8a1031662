"""Files at URIs: one way to check, read and atomically write them, on the driver and on the
executors.

    files = HadoopFiles(spark)                      # driver: Spark's JVM Hadoop FileSystem
    files.exists(uri); files.is_dir(uri); files.rename(a, b); files.delete(uri)
    files.write_atomically(uri, lambda tmp: df.write.parquet(tmp), "output")
    path = fetch(uri, workdir, "weights")           # executor: a local copy (pyarrow.fs)
    publish(uri, net.save, "model", workdir)        # write(local file), then upload + rename
    upload(local_file, uri, "model")

A plain path (or a `file:` URI) is a local file, the same on the driver and on executors
(local mode or a shared mount): it is handed to Hadoop as `file:<absolute path>`, never
resolved against fs.defaultFS. Any other scheme goes, on the driver, through the Hadoop
FileSystem of Spark's JVM (whatever the cluster's Hadoop configuration can open: hdfs,
viewfs, s3a, abfs, gs ...), and on executors (Python workers have no JVM) through
pyarrow.fs (`FileSystem.from_uri`: hdfs/viewfs through libhdfs, s3, gs, abfs), else fsspec
when it is installed and knows the scheme (wrapped as a pyarrow PyFileSystem).

Writes never leave a half file under the final name: the bytes go to `<name>.tmp-<random>`
beside it, which is renamed over the final name once complete, and removed on failure. On a
store whose rename does not replace (HDFS), an existing final file is deleted just before
the rename. Local files are fsynced, and so is their folder after the rename
(atomic_file.publish).
Tests: tests/spark/test_storage.py (local, file:, an fsspec memory filesystem), tests/spark/
test_storage_hadoop.py (Spark's Hadoop FileSystem through viewfs://).
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import re
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from caffeonspark import atomic_file
from caffeonspark.errors import ConfigError, IoError

__all__ = [
    "HadoopFiles",
    "SchemeUnavailable",
    "UnknownScheme",
    "arrow_filesystem",
    "arrow_kind",
    "basename",
    "fetch",
    "fetch_tree",
    "fetched",
    "hadoop_uri",
    "is_local",
    "join",
    "listdir",
    "local_path",
    "normalize",
    "parent",
    "publish",
    "scheme_of",
    "temp_name",
    "upload",
]

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")

# What an executor misses when pyarrow cannot open a scheme.
_NEEDS = {
    "hdfs": "libhdfs on the executors (Hadoop installed: HADOOP_HOME, or ARROW_LIBHDFS_DIR "
    "naming the folder of libhdfs.so; JAVA_HOME; CLASSPATH from `hadoop classpath --glob`)",
    "s3": "pyarrow's S3 support and credentials on the executors (AWS_* variables or an "
    "instance role)",
    "gs": "pyarrow's GCS support and credentials on the executors",
    "abfs": "pyarrow's Azure support and credentials on the executors",
}
_NEEDS["viewfs"] = _NEEDS["hdfs"]
OBJECT_STORES = frozenset({"s3", "s3a", "s3n", "gs", "gcs", "abfs", "abfss", "wasb", "wasbs", "oss"})
_NEEDS["gcs"] = _NEEDS["gs"]


# -- names -------------------------------------------------------------------------------------


def scheme_of(uri: str) -> str | None:
    """`hdfs` for hdfs://nn/x, `file` for file:/x or file:///x, None for a plain path."""
    text = os.fspath(uri)
    if text.startswith("file:"):
        return "file"
    match = _SCHEME.match(text)
    return match.group(1).lower() if match else None


def is_local(uri: str) -> bool:
    """A plain path or a file: URI."""
    return scheme_of(uri) in (None, "file")


def local_path(uri: str, flag: str) -> str:
    """The absolute local path of a plain path or a file: URI."""
    text = os.fspath(uri)
    if text.startswith("file://"):
        text = text[len("file://") :]
    elif text.startswith("file:"):
        text = text[len("file:") :]
    elif not is_local(text):
        raise ConfigError(f"-{flag}: '{uri}' is not a local path or file: URI")
    return os.path.abspath(text)


def normalize(uri: str, flag: str) -> str:
    """Local paths made absolute (what every executor sees); other URIs as given."""
    return local_path(uri, flag) if is_local(uri) else os.fspath(uri)


def hadoop_uri(uri: str) -> str:
    """The URI Hadoop (and Spark's readers and writers) should see: local paths as
    file:<absolute path>, so that a cluster's fs.defaultFS never reinterprets them."""
    return "file:" + local_path(uri, "path") if is_local(uri) else os.fspath(uri)


def join(uri: str, name: str) -> str:
    """`name` (relative) inside the folder `uri`."""
    if is_local(uri):
        return os.path.join(local_path(uri, "path"), name)
    return uri.rstrip("/") + "/" + name


def parent(uri: str) -> str:
    """The folder holding `uri`."""
    if is_local(uri):
        return os.path.dirname(local_path(uri, "path"))
    parts = urlsplit(uri)
    folder = posixpath.dirname(parts.path.rstrip("/")) or "/"
    if "://" in uri:  # keep an empty authority (hdfs:///x): urlunsplit would drop its "//"
        return f"{parts.scheme}://{parts.netloc}{folder}"
    return urlunsplit(parts._replace(path=folder))


def basename(uri: str) -> str:
    if is_local(uri):
        return os.path.basename(local_path(uri, "path"))
    return posixpath.basename(urlsplit(uri).path.rstrip("/"))


def temp_name(uri: str) -> str:
    """A fresh sibling of `uri` to write into before renaming it to `uri`."""
    return f"{uri.rstrip('/')}.tmp-{secrets.token_hex(6)}"


# -- executors: pyarrow.fs ---------------------------------------------------------------------


class SchemeUnavailable(IoError):
    """pyarrow knows the scheme but this process lacks what opening it takes (libhdfs,
    credentials): a property of the machine, so other machines may well have it."""


def arrow_filesystem(uri: str, flag: str) -> tuple[Any, str]:
    """(pyarrow FileSystem, path inside it) for `uri`; an IoError naming the flag, the URI
    and what is missing when this process cannot open its scheme."""
    import pyarrow as pa
    from pyarrow import fs as pafs

    if is_local(uri):
        return pafs.LocalFileSystem(), local_path(uri, flag)
    scheme = scheme_of(uri) or ""
    try:
        return pafs.FileSystem.from_uri(uri)
    except pa.ArrowInvalid as err:
        if "Unrecognized filesystem type" not in str(err):
            raise IoError(f"-{flag}: cannot open '{uri}': {err}") from None
    except (OSError, pa.ArrowException) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        needs = _NEEDS.get(scheme, f"a working {scheme}: filesystem on the executors")
        raise SchemeUnavailable(
            f"-{flag}: cannot open '{uri}': {scheme}: needs {needs} ({first})"
        ) from None
    return _fsspec_filesystem(uri, scheme, flag)


def _fsspec_filesystem(uri: str, scheme: str, flag: str) -> tuple[Any, str]:
    try:
        import fsspec
    except ImportError:
        raise IoError(
            f"-{flag}: cannot open '{uri}': pyarrow has no {scheme}: filesystem (pyarrow.fs "
            "opens file, hdfs, viewfs, s3, gs, abfs; install fsspec with the package of this "
            "scheme for others)"
        ) from None
    from pyarrow.fs import FSSpecHandler, PyFileSystem

    try:
        filesystem, path = fsspec.core.url_to_fs(uri)
    except (ValueError, ImportError) as err:
        raise IoError(
            f"-{flag}: cannot open '{uri}': neither pyarrow nor fsspec opens {scheme}: ({err})"
        ) from None
    return PyFileSystem(FSSpecHandler(filesystem)), path


def fetch(uri: str, workdir: str, flag: str) -> str:
    """A local path holding the file at `uri`: the path itself when local, else a copy in
    `workdir`."""
    if is_local(uri):
        return local_path(uri, flag)
    filesystem, path = arrow_filesystem(uri, flag)
    target = os.path.join(workdir, f"{secrets.token_hex(4)}-{basename(uri)}")
    try:
        with filesystem.open_input_stream(path) as source, open(target, "wb") as sink:
            shutil.copyfileobj(source, sink, 1 << 20)
    except FileNotFoundError:
        raise IoError(f"-{flag}: '{uri}' does not exist") from None
    except OSError as err:
        raise IoError(f"-{flag}: cannot read '{uri}': {err}") from None
    return target


def fetch_tree(uri: str, workdir: str, flag: str) -> str:
    """A local folder holding a copy of the folder at `uri` (itself when local)."""
    if is_local(uri):
        return local_path(uri, flag)
    from pyarrow import fs as pafs

    filesystem, path = arrow_filesystem(uri, flag)
    target = os.path.join(workdir, f"{secrets.token_hex(4)}-{basename(uri)}")
    os.makedirs(target)
    try:
        pafs.copy_files(path, target, source_filesystem=filesystem,
                        destination_filesystem=pafs.LocalFileSystem())
    except OSError as err:
        raise IoError(f"-{flag}: cannot read '{uri}': {err}") from None
    return target


@contextlib.contextmanager
def fetched(uri: str, flag: str, workdir: str | None = None) -> Iterator[str]:
    """`with fetched(uri, "model") as path:` a local path for the block (a removed copy
    when `uri` is not local)."""
    if is_local(uri):
        yield local_path(uri, flag)
        return
    with tempfile.TemporaryDirectory(prefix="caffeonspark-fetch-", dir=workdir) as tmp:
        yield fetch(uri, tmp, flag)


def listdir(uri: str, flag: str) -> list[str]:
    """Names of the entries of the folder `uri` (empty when it does not exist)."""
    from pyarrow import fs as pafs

    filesystem, path = arrow_filesystem(uri, flag)
    infos = filesystem.get_file_info(pafs.FileSelector(path, allow_not_found=True))
    return sorted(posixpath.basename(info.path.rstrip("/")) for info in infos)


def upload(local_file: str, uri: str, flag: str) -> None:
    """Copy `local_file` to `uri` atomically: to a temporary sibling, then renamed."""
    if is_local(uri):
        target = local_path(uri, flag)
        if os.path.abspath(local_file) == target:
            return
        _replace_locally(target, lambda temp: shutil.copyfile(local_file, temp), flag)
        return
    filesystem, path = arrow_filesystem(uri, flag)
    temp = temp_name(path)
    try:
        with open(local_file, "rb") as source, filesystem.open_output_stream(temp) as sink:
            shutil.copyfileobj(source, sink, 1 << 20)
        _move_over(filesystem, temp, path)
    except BaseException as err:
        with contextlib.suppress(Exception):
            filesystem.delete_file(temp)
        if isinstance(err, OSError) and not isinstance(err, IoError):
            raise IoError(f"-{flag}: cannot write '{uri}': {err}") from None
        raise


def _move_over(filesystem: Any, temp: str, path: str) -> None:
    try:
        filesystem.move(temp, path)
    except OSError:
        from pyarrow.fs import FileType

        if filesystem.get_file_info(path).type != FileType.File:
            raise
        filesystem.delete_file(path)  # stores whose rename never replaces (HDFS)
        filesystem.move(temp, path)


def publish(uri: str, write: Callable[[str], Any], flag: str, workdir: str) -> None:
    """Write a file at `uri` with `write(local_path)`, never leaving a partial file under
    `uri`: locally a temporary sibling renamed over it; elsewhere a file in `workdir`
    uploaded by `upload`."""
    if is_local(uri):
        _replace_locally(local_path(uri, flag), write, flag)
        return
    staged = os.path.join(workdir, f"{secrets.token_hex(4)}-{basename(uri)}")
    try:
        write(staged)
        upload(staged, uri, flag)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(staged)


def _replace_locally(target: str, write: Callable[[str], Any], flag: str) -> None:
    temp = temp_name(target)
    try:
        write(temp)
        atomic_file.publish(temp, target)
    except BaseException as err:
        atomic_file.remove(temp)
        if isinstance(err, OSError) and not isinstance(err, IoError):
            raise IoError(f"-{flag}: cannot write '{target}': {err}") from None
        raise


def arrow_kind(uri: str, flag: str) -> str | None:
    """"file", "dir" or None (absent) for `uri`, through pyarrow.fs."""
    from pyarrow.fs import FileType

    filesystem, path = arrow_filesystem(uri, flag)
    try:
        kind = filesystem.get_file_info(path).type
    except OSError as err:
        raise IoError(f"-{flag}: cannot check '{uri}': {err}") from None
    return {FileType.File: "file", FileType.Directory: "dir"}.get(kind)


def identity(uri: str, flag: str) -> tuple[int, int] | None:
    """(mtime in ns, size) of the file at `uri`, None when there is none: what tells a file
    rewritten since from the one seen before."""
    from pyarrow.fs import FileType

    filesystem, path = arrow_filesystem(uri, flag)
    try:
        info = filesystem.get_file_info(path)
    except OSError as err:
        raise IoError(f"-{flag}: cannot check '{uri}': {err}") from None
    if info.type != FileType.File:
        return None
    return int(info.mtime_ns or 0), int(info.size or 0)


def write_text(uri: str, text: str, flag: str) -> None:
    """`text` as the whole file at `uri`, atomically (publish)."""

    def write(path: str) -> None:
        with open(path, "w") as out:
            out.write(text)

    if is_local(uri):
        os.makedirs(os.path.dirname(local_path(uri, flag)), exist_ok=True)
    else:
        filesystem, folder = arrow_filesystem(parent(uri), flag)
        with contextlib.suppress(OSError):
            filesystem.create_dir(folder, recursive=True)  # object stores have no folders
    with tempfile.TemporaryDirectory(prefix="caffeonspark-") as workdir:
        publish(uri, write, flag, workdir)


def read_text(uri: str, flag: str) -> str | None:
    """The file at `uri` as text, None when it does not exist."""
    if arrow_kind(uri, flag) != "file":
        return None
    with tempfile.TemporaryDirectory(prefix="caffeonspark-") as workdir:
        with open(fetch(uri, workdir, flag)) as source:
            return source.read()


def remove_tree(uri: str, flag: str) -> None:
    """Delete the folder `uri` and everything in it, if it is there (best effort)."""
    with contextlib.suppress(OSError):
        if is_local(uri):
            shutil.rmtree(local_path(uri, flag), ignore_errors=True)
            return
        filesystem, path = arrow_filesystem(uri, flag)
        filesystem.delete_dir(path)


# -- driver: Spark's Hadoop FileSystem ---------------------------------------------------------


class UnknownScheme(IoError):
    """The cluster's Hadoop configuration has no FileSystem for the URI's scheme."""


class HadoopFiles:
    """The files of any URI the cluster's Hadoop configuration opens, through the JVM of a
    SparkSession (driver side only)."""

    def __init__(self, spark: Any) -> None:
        context = getattr(spark, "sparkContext", spark)
        self._jvm = context._jvm
        self._conf = context._jsc.hadoopConfiguration()

    def _resolve(self, uri: str) -> tuple[Any, Any]:
        path = self._jvm.org.apache.hadoop.fs.Path(hadoop_uri(uri))
        return path.getFileSystem(self._conf), path

    def _call(self, what: str, uri: str, method: str, *args: Any) -> Any:
        from py4j.protocol import Py4JJavaError

        try:
            filesystem, path = self._resolve(uri)
            return getattr(filesystem, method)(path, *args)
        except Py4JJavaError as err:
            message = str(err.java_exception).strip().splitlines()[0]
            error = UnknownScheme if "UnsupportedFileSystemException" in message else IoError
            raise error(f"cannot {what} '{uri}': {message}") from None

    def exists(self, uri: str) -> bool:
        return bool(self._call("check", uri, "exists"))

    def is_dir(self, uri: str) -> bool:
        return bool(self._call("check", uri, "exists")) and bool(
            self._call("check", uri, "getFileStatus").isDirectory()
        )

    def is_file(self, uri: str) -> bool:
        return bool(self._call("check", uri, "exists")) and bool(
            self._call("check", uri, "getFileStatus").isFile()
        )

    def kind(self, uri: str, flag: str) -> str | None:
        """"file", "dir" or None (absent); through pyarrow.fs when Hadoop has no FileSystem
        for the scheme (s3: where the cluster's Hadoop has s3a:)."""
        try:
            if not self.exists(uri):
                return None
            return "dir" if self._call("check", uri, "getFileStatus").isDirectory() else "file"
        except UnknownScheme:
            return arrow_kind(uri, flag)

    def mkdirs(self, uri: str) -> None:
        if not self._call("create", uri, "mkdirs"):
            raise IoError(f"cannot create the folder '{uri}'")

    def delete(self, uri: str) -> bool:
        """Remove the file or folder (recursively); False when there was none."""
        return bool(self._call("delete", uri, "delete", True))

    def rename(self, source: str, target: str) -> None:
        """Rename `source` to `target`, which must not exist (Hadoop would move a folder
        *into* an existing one)."""
        if self.exists(target):
            raise IoError(f"cannot rename '{source}' to '{target}': it exists")
        target_path = self._resolve(target)[1]
        if not self._call("rename", source, "rename", target_path):
            raise IoError(f"cannot rename '{source}' to '{target}'")

    def write_atomically(self, uri: str, write: Callable[[str], Any], flag: str) -> None:
        """`write(temp_uri)` (e.g. Spark's DataFrame writer) into a temporary sibling of
        `uri`, then rename it to `uri`; the sibling is removed when anything fails."""
        final = hadoop_uri(uri)
        if self.exists(final):
            raise ConfigError(
                f"-{flag}: '{uri}' exists; remove it or name another path (outputs are never "
                "overwritten)"
            )
        temp = temp_name(final)
        try:
            write(temp)
            self.rename(temp, final)
        except BaseException:
            with contextlib.suppress(Exception):
                self.delete(temp)
            raise
