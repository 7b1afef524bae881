"""An experiment as a command names it (a folder, or a URI in object storage), opened once
and passed down: where it lives, the local folder it is read and written in, its metadata.

A command calls `open_experiment` once; the library functions it calls take the result (or
still a path, which they open). Only this module and storage.py tell a URI from a folder;
only experiment.py reads and writes tune_mnist.json.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from tune_mnist.store import storage
from tune_mnist.store.experiment import (
    META_FILE,
    REPORT_DIR,
    ExperimentMeta,
    read_meta,
    report_dir,
)
from tune_mnist.store.trust import SIGNATURES, sign


@dataclass(frozen=True)
class Experiment:
    """One experiment, opened."""

    folder: Path  # where it is read and written on this machine: itself, or a URI's copy
    uri: str | None = None  # its place in object storage, when it lives there
    meta: ExperimentMeta | None = None  # read once when opened; None before a sweep writes it

    @property
    def shown(self) -> str:
        """The experiment as the user named it: its URI, else its folder."""
        return self.uri or str(self.folder)

    @property
    def report(self) -> Path:
        """The local report/ folder."""
        return report_dir(self.folder)

    def place(self, run_folder: str = ".") -> str:
        """Where Ray Tune reads and writes one of its runs: a folder, or a URI."""
        if self.uri is None:
            return str(self.folder / run_folder)
        return self.uri if run_folder == "." else storage.join(self.uri, run_folder)

    def put_beside(self, written: Path) -> None:
        """Put a file of tune-mnist's own, written in the local copy, beside the experiment
        in object storage (a later fetch drops from the copy what the URI does not hold)."""
        if self.uri:
            storage.put(written, storage.join(self.uri, written.name))

    def signed_meta(self) -> None:
        """Sign the metadata this process has just written and put it, with the signatures,
        beside the experiment in object storage (trust.py)."""
        sign(self.folder, META_FILE)
        self.put_beside(self.meta_file)
        self.put_beside(self.folder / SIGNATURES)

    def put_report(self) -> None:
        """Put the local report/ folder into object storage, where it lives there."""
        if self.uri:
            storage.put(self.report, storage.join(self.uri, REPORT_DIR))

    def fetched(self, must_exist: bool = True) -> Experiment:
        """The local copy brought up to date from object storage (a folder: itself)."""
        if self.uri:
            storage.fetch(self.uri, self.folder, must_exist=must_exist)
        return self

    def reread(self) -> Experiment:
        """The same experiment with its metadata read again (after this process wrote it)."""
        return replace(self, meta=read_meta(self.folder))

    @property
    def meta_file(self) -> Path:
        return self.folder / META_FILE


def locate(experiment: str | Path, absolute: bool = False) -> Experiment:
    """Where an experiment lives, nothing read: a URI's local copy is its cache folder; a
    folder as given (made absolute if asked: Ray refuses relative storage paths)."""
    if storage.is_uri(experiment):
        uri = storage.check_uri(str(experiment))
        return Experiment(storage.cache_dir(uri), uri)
    return Experiment(Path(experiment).absolute() if absolute else Path(experiment))


def open_experiment(experiment: str | Path | Experiment) -> Experiment:
    """Open an experiment once: a URI's local copy brought up to date, its metadata read
    (one clear line when there is none). An Experiment already opened is returned as it is."""
    if isinstance(experiment, Experiment):
        return experiment if experiment.meta is not None else experiment.fetched().reread()
    located = locate(experiment).fetched()
    return located.reread()
