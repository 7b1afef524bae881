"""Experiments in object storage: `s3://bucket/prefix` and the other URIs pyarrow.fs resolves.

Ray Tune writes a sweep's trials and checkpoints to the URI itself (RunConfig's
storage_path; pyarrow.fs.FileSystem.from_uri on every node, so each node takes its
credentials and endpoint from its own environment: AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION, AWS_ENDPOINT_URL or AWS_ENDPOINT_URL_S3).
tune-mnist's own files (metadata, signatures, report) are written in a local copy of the
experiment and uploaded; commands that read an experiment at a URI first bring that copy
up to date (`fetch`), then read it like any folder. The copy lives in
`$TUNE_MNIST_CACHE/experiments/<hash of the URI>/<name>` (default ~/.cache/tune-mnist)
and leaves out the checkpoints, which no table needs.

Object storage has no locks: two machines sweeping into one URI are not stopped from
doing so (one machine running two is, through the local copy's lock).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from tune_mnist.errors import TuneMnistError, first_line

EXPERIMENTS = "experiments"  # under the cache root: local copies of experiments at URIs
_OURS = (".tune-mnist.lock", ".tune-mnist.owner")  # the local copy's lock: never remote
# S3's error codes as the AWS SDK (pyarrow) and the REST API name them
_NO_BUCKET = ("NO_SUCH_BUCKET", "NoSuchBucket")
_REFUSED = (
    "INVALID_ACCESS_KEY_ID",
    "InvalidAccessKeyId",
    "SIGNATURE_DOES_NOT_MATCH",
    "SignatureDoesNotMatch",
    "ACCESS_DENIED",
    "AccessDenied",
    "EXPIRED_TOKEN",
    "ExpiredToken",
    "INVALID_TOKEN",
    "InvalidToken",
)
_UNREACHABLE = ("NETWORK_CONNECTION", "Couldn't connect", "Could not resolve", "curlCode")


def is_uri(path: str | Path | None) -> bool:
    """Whether a storage path is an object-storage URI (s3://, gs://, ...), not a folder."""
    return path is not None and "://" in str(path) and not str(path).startswith("file://")


def check_uri(uri: str) -> str:
    """A storage URI without a query or user part: the endpoint and keys come from the
    environment, so none is saved in the experiment's metadata or Tune's pickles."""
    authority = uri.split("://", 1)[1].split("/", 1)[0]
    if "?" in uri or "@" in authority:
        raise TuneMnistError(
            f"storage path {uri.split('?')[0]}: no query or credentials in the URI; set "
            "AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY instead"
        )
    # a `..` part would name another experiment's place, and its local copy another folder
    if any(part in (".", "..") for part in uri.split("://", 1)[1].split("/")):
        raise TuneMnistError(f"storage path {uri}: no `.` or `..` parts in a URI")
    return uri


def join(uri: str, *parts: str) -> str:
    """A URI with path parts added: join("s3://b/runs", "q1a") -> "s3://b/runs/q1a"."""
    return "/".join([uri.rstrip("/"), *(p.strip("/") for p in parts)])


def split(uri: str) -> tuple[str, str]:
    """An experiment's URI as (the storage path above it, its name)."""
    parent, _, name = uri.rstrip("/").rpartition("/")
    if not name or parent.endswith(":/"):  # s3://bucket: a bucket, not an experiment in one
        raise TuneMnistError(f"{uri}: expected an experiment inside a bucket, e.g. s3://bucket/q1a")
    return parent, name


def filesystem(uri: str):
    """The pyarrow filesystem of a URI and the path inside it (as Ray resolves it)."""
    import pyarrow.fs

    try:
        fs, path = pyarrow.fs.FileSystem.from_uri(uri)
    except (ValueError, OSError, TypeError) as e:
        raise TuneMnistError(f"storage path {uri}: {first_line(e)}") from None
    return fs, path.rstrip("/")


def cache_dir(uri: str) -> Path:
    """Where the local copy of the experiment at `uri` lives."""
    root = Path(os.environ.get("TUNE_MNIST_CACHE", Path.home() / ".cache" / "tune-mnist"))
    digest = hashlib.sha256(uri.rstrip("/").encode()).hexdigest()[:16]
    return root.expanduser().absolute() / EXPERIMENTS / digest / split(uri)[1]


def describe(uri: str, error: OSError) -> TuneMnistError:
    """One line on why object storage refused a request: no bucket, credentials, network."""
    text = str(error)
    fs_path = uri.split("://", 1)[-1]
    bucket = fs_path.split("/", 1)[0]
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    at = f" at {endpoint}" if endpoint else ""
    if any(code in text for code in _NO_BUCKET):
        return TuneMnistError(f"storage path {uri}: bucket {bucket!r} does not exist{at}")
    if code := next((c for c in _REFUSED if c in text), None):
        return TuneMnistError(
            f"storage path {uri}: the object store{at} refused these credentials ({code}): "
            "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or the node's role)"
        )
    if any(code in text for code in _UNREACHABLE):
        return TuneMnistError(f"storage path {uri}: cannot reach the object store{at}")
    # pyarrow's messages end in a request id: noise on one line
    reason = re.sub(r" \(Request ID.*", "", first_line(error))
    return TuneMnistError(f"storage path {uri}: {reason}")


@contextlib.contextmanager
def opened(uri: str) -> Iterator[tuple[Any, str]]:
    """The filesystem and path of `uri`; an OSError inside the block said in one line."""
    fs, path = filesystem(uri)
    try:
        yield fs, path
    except OSError as e:
        raise describe(uri, e) from None


def check_storage(uri: str) -> None:
    """Before a sweep starts: the bucket exists and these credentials may list and write in it.

    A probe object is written and removed; nothing stays behind, whatever fails.
    """
    import pyarrow.fs

    with opened(uri) as (fs, path):
        probe = f"{path}/.tune-mnist-probe-{uuid.uuid4().hex}"
        fs.get_file_info(pyarrow.fs.FileSelector(path, allow_not_found=True))
        with fs.open_output_stream(probe) as f:
            f.write(b"")
        fs.delete_file(probe)


def exists(uri: str, name: str) -> bool:
    """Whether the object `name` exists inside the folder at `uri`."""
    import pyarrow.fs

    with opened(uri) as (fs, path):
        return fs.get_file_info(f"{path}/{name}").type == pyarrow.fs.FileType.File


def folders(uri: str, prefix: str = "") -> list[str]:
    """The names of the folders directly inside `uri` that start with `prefix`, sorted."""
    import pyarrow.fs

    with opened(uri) as (fs, path):
        found = fs.get_file_info(pyarrow.fs.FileSelector(path, allow_not_found=True))
    names = (PurePosixPath(i.path).name for i in found if i.type == pyarrow.fs.FileType.Directory)
    return sorted(n for n in names if n.startswith(prefix))


def write_bytes(uri: str, content: bytes) -> None:
    """Write one object (a PUT replaces the whole object at once: readers never see half)."""
    with opened(uri) as (fs, path), fs.open_output_stream(path) as f:
        f.write(content)


def put(local: Path, uri: str) -> None:
    """Upload a local file, or a folder with everything in it, to `uri`."""
    import pyarrow.fs

    with opened(uri) as (fs, path):
        if local.is_dir():
            fs.create_dir(path)
            pyarrow.fs.copy_files(str(local), path, destination_filesystem=fs)
        else:
            with fs.open_output_stream(path) as f:
                f.write(local.read_bytes())


def _wanted(relative: str) -> bool:
    """The files a local copy keeps: everything but checkpoints (no table reads them)."""
    parts = PurePosixPath(relative).parts
    return not any(p.startswith("checkpoint_") for p in parts[:-1])


def fetch(uri: str, dest: Path | None = None, must_exist: bool = True) -> Path:
    """Bring the local copy of the experiment at `uri` up to date; return its folder.

    Files whose size and time match the remote ones are kept; files gone from the URI are
    removed from the copy. With `must_exist`, a URI that holds nothing is an error.
    """
    import pyarrow.fs

    dest = dest or cache_dir(uri)
    with opened(uri) as (fs, root):
        found = fs.get_file_info(
            pyarrow.fs.FileSelector(root, recursive=True, allow_not_found=True)
        )
        remote = {
            info.path[len(root) + 1 :]: info
            for info in found
            if info.type == pyarrow.fs.FileType.File and _wanted(info.path[len(root) + 1 :])
        }
        if must_exist and not remote:
            raise TuneMnistError(f"{uri}: no such experiment (nothing stored there)")
        for relative, info in remote.items():
            _download(fs, info, _inside(dest, relative, uri))
    if dest.is_dir():
        for local in [p for p in dest.rglob("*") if p.is_file()]:
            relative = local.relative_to(dest).as_posix()
            if relative not in remote and local.name not in _OURS:
                local.unlink(missing_ok=True)
    return dest


def _inside(dest: Path, relative: str, uri: str) -> Path:
    """Where an object of the experiment goes in its local copy; refused (one line) when its
    key would lead out of the copy (`..`, an absolute part), as a planted key could."""
    target = (dest / relative).resolve()
    if not target.is_relative_to(dest.resolve()) or target == dest.resolve():
        raise TuneMnistError(f"{uri}: refused the object {relative!r}: it leads out of the copy")
    return dest / relative


def _download(fs, info, target: Path) -> None:
    mtime = info.mtime.timestamp() if info.mtime else None
    if target.is_file():
        stat = target.stat()
        if stat.st_size == info.size and mtime is not None and stat.st_mtime == mtime:
            return
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    try:
        with fs.open_input_stream(info.path) as source, open(tmp, "wb") as f:
            while chunk := source.read(1 << 20):
                f.write(chunk)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    if mtime is not None:  # the remote time: results.py picks a config's newest folder by it
        os.utime(target, (mtime, mtime))
