"""Which experiment folders this user wrote: an HMAC over the files resuming trusts.

Resuming makes Ray unpickle an experiment's `tuner.pkl`, its experiment and search states
and any trial's `error.pkl`, and rebuilds the sweep from `tune_mnist.json`, which names the
model files and trainables to import and the tracking server to contact; a folder from
somewhere else could run code either way. The sweeps of this user sign those files with a
key kept in the user's config directory (as Jupyter signs notebooks), and `resume`
refuses a folder whose files are unsigned or changed unless told `--trust`. Checkpoints
hold tensors and plain types only and load with `torch.load(weights_only=True)`: they need
no signature. Files Tune never reads (text, CSV, images) are ignored, never signed.

A sweep signs only what it wrote: what its own process put in Tune's staging folder (the
experiment's state, the searcher's, each trial's `params.pkl` and `error.pkl`), `tuner.pkl`
just after Tune writes it, and the metadata it writes. Nothing is signed because it is in
the experiment folder: a file planted there, even during a run, stays unsigned.

Tune rewrites its state every second in the staging folder and copies it into the
experiment in a background thread. A sweep signs each save there before the copy starts
(and uploads the signatures first, for an experiment in object storage), and keeps the
last few signed versions of each file: a driver killed mid-copy leaves a folder it signed.
A resume then has Tune read the experiment through `VerifiedFiles`, which checks the
bytes Tune actually reads against the ones verified here (verified_fs.py).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
from collections.abc import Iterable, Iterator
from pathlib import Path

from tune_mnist.errors import TuneMnistError
from tune_mnist.store.experiment import LOCK_FILE, OWNER_FILE, RUN_PREFIX, write_atomic
from tune_mnist.store.timings import TIMING_FILE

KEY_ENV = "TUNE_MNIST_CONFIG_DIR"  # where the key lives; else $XDG_CONFIG_HOME/tune-mnist
SIGNATURES = ".tune-mnist.sig"
KEPT = 4  # signed versions kept per file: the folder may lag Tune's newest state
# tune-mnist's own files that nothing imports, unpickles or contacts from: never signed
# (tune_mnist.json is signed: it names the code a resume imports)
_OURS = {TIMING_FILE, LOCK_FILE, OWNER_FILE, SIGNATURES, ".validate_storage_marker"}
TUNER_FILE = "tuner.pkl"  # Tune's own, written once when a Tuner is made
RUN_FOLDER = re.compile(re.escape(RUN_PREFIX) + r"[0-9]+")


def key_path() -> Path:
    """The signing key: $TUNE_MNIST_CONFIG_DIR, else $XDG_CONFIG_HOME or ~/.config."""
    folder = os.environ.get(KEY_ENV)
    if not folder:
        config = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
        folder = Path(config) / "tune-mnist"
    return Path(folder) / "signing.key"


def _key(create: bool) -> bytes | None:
    path = key_path()
    if path.is_file():
        return path.read_bytes()
    if not create:
        return None
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # O_EXCL: two sweeps starting together keep one key; the mode is the owner's alone.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes()
    with os.fdopen(fd, "wb") as f:
        f.write(secrets.token_bytes(32))
    return path.read_bytes()


def is_read_by_resume(name: str) -> bool:
    """Whether a file of a Tune run, by its name relative to the run's folder, is one that
    resuming may unpickle or import from: pickles and JSON at the top (tuner.pkl, the
    experiment and search states, tune_mnist.json) and pickles in trial folders."""
    parts = name.split("/")
    if any(part.startswith(".") for part in parts) or parts[-1] in _OURS:
        return False
    if len(parts) == 1:
        return name.endswith((".pkl", ".json"))
    return len(parts) == 2 and name.endswith(".pkl") and not RUN_FOLDER.fullmatch(parts[0])


def pickled_files(folder: Path) -> Iterator[Path]:
    """The files of a Tune run's folder that resuming it may read (`is_read_by_resume`).
    The folders of later runs (`extend-N/`) carry their own signatures."""
    for path in folder.iterdir():
        if path.is_file() and is_read_by_resume(path.name):
            yield path
        elif path.is_dir() and not RUN_FOLDER.fullmatch(path.name):
            yield from (
                p
                for p in path.glob("*.pkl")
                if p.is_file() and is_read_by_resume(f"{path.name}/{p.name}")
            )


def _digest(key: bytes, name: str, content: bytes) -> str:
    return hmac.new(key, name.encode() + b"\0" + content, hashlib.sha256).hexdigest()


def _read_signatures(experiment: Path) -> dict[str, list[str]]:
    try:
        files = json.loads((experiment / SIGNATURES).read_text()).get("files", {})
    except (OSError, ValueError, AttributeError):
        return {}
    return files if isinstance(files, dict) else {}


class Signer:
    """Signs an experiment's pickled files as a sweep writes them (see the module's note)."""

    def __init__(self, experiment: Path, upload_to: str | None = None):
        self.experiment = Path(experiment)
        self.upload_to = upload_to  # the experiment's URI, when it lives in object storage
        self._unsent = False  # signatures saved here but not yet at upload_to
        self.key = _key(create=True)
        self.signed = _read_signatures(self.experiment)
        self._seen: dict[Path, tuple[int, int, int]] = {}  # path -> what stat said last

    def sign_copy(self, source: Path) -> None:
        """Sign every file resuming reads in `source`, a folder this process wrote (Tune's
        staging folder), under its name in the experiment."""
        source = Path(source)
        if source.is_dir():
            self._sign(source, pickled_files(source))

    def sign_written(self, *names: str) -> None:
        """Sign the named files of the experiment, which this process has just written."""
        self._sign(self.experiment, (self.experiment / name for name in names))

    def _sign(self, source: Path, paths: Iterable[Path]) -> None:
        changed = False
        for path in paths:
            try:
                stat = path.stat()
                seen = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
                if self._seen.get(path) == seen:
                    continue
                content = path.read_bytes()
            except OSError:  # Tune replaced or removed it meanwhile: the next save signs it
                continue
            self._seen[path] = seen
            name = path.relative_to(source).as_posix()
            digest = _digest(self.key, name, content)
            versions = self.signed.setdefault(name, [])
            if digest not in versions:
                versions.append(digest)
                del versions[:-KEPT]
                changed = True
        record = None
        if changed:  # with what another signer of this folder saved meanwhile (the metadata's)
            for name, versions in _read_signatures(self.experiment).items():
                if isinstance(versions, list):
                    mine = self.signed.setdefault(name, [])
                    mine[:0] = [v for v in versions if isinstance(v, str) and v not in mine]
                    del mine[:-KEPT]
            record = json.dumps({"version": 1, "files": self.signed}, indent=1)
            write_atomic(self.experiment / SIGNATURES, record)
            self._unsent = self.upload_to is not None
        if self._unsent:
            self._upload(record)

    def _upload(self, record: str | None) -> None:
        """Copy the signatures to the experiment's URI; after a failure, at the next sign."""
        from tune_mnist.store.storage import join, write_bytes

        record = record or (self.experiment / SIGNATURES).read_text()
        try:
            write_bytes(join(self.upload_to, SIGNATURES), record.encode())
            self._unsent = False
        except TuneMnistError:  # a network blip must not stop the sweep
            pass


def sign(experiment: str | Path, *names: str) -> None:
    """Sign the named files of an experiment as they are now: this process wrote them."""
    Signer(Path(experiment)).sign_written(*names)


def check_trusted(experiment: str | Path) -> None:
    """Refuse, in one line, an experiment whose pickles or metadata this user's sweeps did
    not sign as they are now: resuming or extending it would run what they name."""
    if untrusted := untrusted_files(experiment):
        more = f" and {len(untrusted) - 3} more" if len(untrusted) > 3 else ""
        shown = ", ".join(untrusted[:3]) + more
        raise TuneMnistError(
            f"{experiment}: {shown} not signed by this user's tune-mnist, or changed since; "
            "resuming unpickles them and imports what they name, which can run code: add "
            "--trust only if you know where the folder came from"
        )


def untrusted_files(experiment: str | Path) -> list[str]:
    """The pickled files of an experiment this user's key did not sign as they are now
    (every one of them when there is no key); empty when the folder can be resumed safely."""
    experiment = Path(experiment)
    key = _key(create=False)
    signed = _read_signatures(experiment)
    bad = []
    for path in sorted(pickled_files(experiment)):
        name = path.relative_to(experiment).as_posix()
        try:
            digest = _digest(key, name, path.read_bytes()) if key else None
        except OSError:
            digest = None
        if digest is None or not any(hmac.compare_digest(digest, s) for s in signed.get(name, [])):
            bad.append(name)
    return bad
