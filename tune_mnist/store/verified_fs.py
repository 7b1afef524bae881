"""The experiment as a resumed Tune reads it: each file resuming trusts is checked on the
bytes Tune actually reads, against the copy verified before the resume started.

`trust.check_trusted` verifies the local copy of an experiment (for one in object
storage, a download), but Tune reads `tuner.pkl`, its state files and trials' `error.pkl`
again later, from the experiment's own place. A file swapped in between would be
unpickled unchecked. A resume hands Tune this filesystem instead: every read of a file
`trust.is_read_by_resume` names must match the SHA-256 of what was verified, or what
this process itself wrote through it since; anything else passes through untouched.
The filesystem travels to Ray's workers by its URI, never by its credentials: each
process resolves the URI as Ray would (pyarrow's `FileSystem.from_uri`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pyarrow
import pyarrow.fs

from tune_mnist.errors import TuneMnistError
from tune_mnist.store.trust import is_read_by_resume, pickled_files


def _sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def verified_digests(folder: Path) -> dict[str, str]:
    """The SHA-256 of each file resuming reads in a run's folder, as it is now: call it
    right after the folder was verified (or trusted)."""
    folder = Path(folder)
    return {
        p.relative_to(folder).as_posix(): _sha256(p.read_bytes()) for p in pickled_files(folder)
    }


class VerifiedFiles(pyarrow.fs.FileSystemHandler):
    """A pyarrow filesystem handler over the filesystem of `uri` (a local path or a URI
    Ray resolves) that checks the reads resuming trusts (see the module's note)."""

    def __init__(self, uri: str, digests: dict[str, str]):
        self.uri = uri
        self.digests = dict(digests)
        self._fs, self.root = pyarrow.fs.FileSystem.from_uri(uri)
        self.root = self.root.rstrip("/")
        self.written: dict[str, str] = {}  # what this process wrote through here since

    @classmethod
    def over(cls, uri: str, folder: Path) -> tuple[pyarrow.fs.FileSystem, str]:
        """The filesystem to restore the Tune run at `uri` with, and the run's path in it,
        checked against its verified local copy `folder`."""
        handler = cls(uri, verified_digests(folder))
        return pyarrow.fs.PyFileSystem(handler), handler.root

    def __getstate__(self):  # never the credentials: each process resolves the URI itself
        return {"uri": self.uri, "digests": self.digests}

    def __setstate__(self, state):
        self.__init__(state["uri"], state["digests"])

    def _name(self, path: str) -> str | None:
        """The name resuming knows a path by, when it is one it reads; else None."""
        if not path.startswith(self.root + "/"):
            return None
        name = path[len(self.root) + 1 :]
        return name if is_read_by_resume(name) else None

    def _read(self, path: str) -> pyarrow.NativeFile:
        with self._fs.open_input_stream(path) as f:
            content = f.readall()
        name = self._name(path)
        digest = _sha256(content)
        if digest not in (self.digests.get(name), self.written.get(name)):
            raise TuneMnistError(
                f"{path}: changed after it was verified (or added since); nothing of it was "
                "read. Resume again to check the experiment as it is now"
            )
        return pyarrow.BufferReader(content)

    def open_input_stream(self, path):
        return self._read(path) if self._name(path) else self._fs.open_input_stream(path)

    def open_input_file(self, path):
        return self._read(path) if self._name(path) else self._fs.open_input_file(path)

    def open_output_stream(self, path, metadata):
        stream = self._fs.open_output_stream(path, metadata=metadata)
        name = self._name(path)
        return (
            pyarrow.PythonFile(_Recorded(stream, name, self.written), mode="w") if name else stream
        )

    def open_append_stream(self, path, metadata):
        if self._name(path):  # Tune never appends to these; a record would be partial
            raise TuneMnistError(f"{path}: appending to a file resuming reads is not allowed")
        return self._fs.open_append_stream(path, metadata=metadata)

    def get_type_name(self):
        return f"verified+{self._fs.type_name}"

    def normalize_path(self, path):
        return self._fs.normalize_path(path)

    def equals(self, other):
        return isinstance(other, VerifiedFiles) and (other.uri, other.digests) == (
            self.uri,
            self.digests,
        )

    def get_file_info(self, paths):
        return self._fs.get_file_info(paths)

    def get_file_info_selector(self, selector):
        return self._fs.get_file_info(selector)

    def create_dir(self, path, recursive):
        self._fs.create_dir(path, recursive=recursive)

    def delete_dir(self, path):
        self._fs.delete_dir(path)

    def delete_dir_contents(self, path, missing_dir_ok=False):
        self._fs.delete_dir_contents(path, missing_dir_ok=missing_dir_ok)

    def delete_root_dir_contents(self):
        raise TuneMnistError("a resume never empties the storage's root")

    def delete_file(self, path):
        self._fs.delete_file(path)

    def move(self, src, dest):
        self._fs.move(src, dest)
        if (name := self._name(dest)) is not None:  # its bytes: what was verified, or not
            self.written.pop(name, None)

    def copy_file(self, src, dest):
        self._fs.copy_file(src, dest)
        if (name := self._name(dest)) is not None:
            self.written.pop(name, None)


class _Recorded:
    """A write stream that records the SHA-256 of what went through it, on close."""

    def __init__(self, stream, name: str, record: dict[str, str]):
        self.stream, self.name, self.record = stream, name, record
        self.hash = hashlib.sha256()
        self.closed = False

    def write(self, data) -> int:
        self.hash.update(data)
        return self.stream.write(data)

    def flush(self) -> None:
        self.stream.flush()

    def close(self) -> None:
        if not self.closed:
            self.stream.close()
            self.record[self.name] = self.hash.hexdigest()
            self.closed = True
