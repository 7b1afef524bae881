"""Which experiment folders this user wrote: an HMAC over the files resuming trusts.

Resuming makes Ray unpickle an experiment's `tuner.pkl`, its experiment and search states
and any trial's `error.pkl`, and rebuilds the sweep from `tune_mnist.json`, which names the
model files and trainables to import and the tracking server to contact; a folder from
somewhere else could run code either way. The
sweeps of this user sign those files with a key kept in the user's config directory (as
Jupyter signs notebooks), and `resume` refuses a folder whose pickled files are unsigned
or changed unless told `--trust`. Checkpoints hold tensors and plain types only and load
with `torch.load(weights_only=True)`: they need no signature.

Tune rewrites its state every second in a staging folder and copies it into the
experiment in a background thread. A sweep signs each save in that folder before the copy
starts (and uploads the signatures first, for an experiment in object storage), signs the
folder itself at every step of Tune's loop, and keeps the last few signed versions of each
file: a driver killed mid-copy leaves a folder it signed. The exceptions are the first
save and `tuner.pkl`, which a sweep can only sign just after Tune writes them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

from tune_mnist.errors import TuneMnistError
from tune_mnist.store.experiment import LOCK_FILE, OWNER_FILE, write_atomic
from tune_mnist.store.timings import TIMING_FILE

KEY_ENV = "TUNE_MNIST_CONFIG_DIR"  # where the key lives; else $XDG_CONFIG_HOME/tune-mnist
SIGNATURES = ".tune-mnist.sig"
KEPT = 4  # signed versions kept per file: the folder may lag Tune's newest state
# tune-mnist's own files that nothing imports, unpickles or contacts from: never signed
# (tune_mnist.json is signed: it names the code a resume imports)
_OURS = {TIMING_FILE, LOCK_FILE, OWNER_FILE, SIGNATURES, ".validate_storage_marker"}


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


def pickled_files(folder: Path) -> Iterator[Path]:
    """The files of an experiment that resuming it may unpickle or import from: Tune's own
    files at the top (tuner.pkl, experiment and search states), tune_mnist.json, and any
    pickle one level down."""
    for path in folder.iterdir():
        if path.is_file() and path.name not in _OURS and not path.name.startswith("."):
            yield path
        elif path.is_dir():
            yield from (p for p in path.glob("*.pkl") if p.is_file())


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

    def sign(self, source: Path | None = None, only: tuple[str, ...] | None = None) -> None:
        """Sign every changed pickled file of `source` (default: the experiment), or the
        files named in `only`, under its name in the experiment; save the signatures if
        any changed."""
        source = Path(source) if source else self.experiment
        if not source.is_dir():
            return
        changed = False
        paths = pickled_files(source) if only is None else (source / name for name in only)
        for path in paths:
            try:
                stat = path.stat()
                seen = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
                if self._seen.get(path) == seen:
                    continue
                content = path.read_bytes()
            except OSError:  # Tune replaced or removed it meanwhile: the next step signs it
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
        if changed:
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


def sign(experiment: str | Path, only: tuple[str, ...] | None = None) -> None:
    """Sign an experiment's pickled files and metadata as they are now, or only the files
    named (this user vouches for them: its process wrote them, or verified them)."""
    Signer(Path(experiment)).sign(only=only)


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
