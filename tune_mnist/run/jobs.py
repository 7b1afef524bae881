"""Sweeps as Ray Jobs: the driver runs on the cluster, so the submitting machine can go.

`submit` sends `tune-mnist sweep SPACE OPTIONS...` to the cluster's job server (the
dashboard, http://HEAD:8265) through Ray's JobSubmissionClient; the other functions
list this tool's jobs, read or follow a job's output, and stop one. Every job carries
metadata marking it as tune-mnist's, with the experiment folder it writes, so `jobs`
lists only these and `stop` touches nothing else.

The package reaches the driver in one of two ways. By default the cluster's image has
tune-mnist installed (docker/Dockerfile) and the job runs its `tune-mnist` command. With
`ship=True` this machine's tune_mnist package (built-in spaces included) is uploaded
with the job as a runtime_env py_module and run as `python -m tune_mnist`: for a
cluster whose image has the dependencies (torch, Ray, ...) but another or no
tune-mnist. A space file is always sent with the job (runtime_env working_dir), since
the cluster cannot read this machine's files; the data folder and storage path are the
cluster's own.

Stopping a job makes Ray send SIGTERM to the driver, which the sweep turns into Tune's
graceful stop (cluster.py): Tune saves the experiment and the sweep exits 143, so
`tune-mnist submit SPACE --resume ...` (the same options) continues it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import shlex
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from tune_mnist.errors import TuneMnistError, first_line
from tune_mnist.spec.configs import SHIPPED_ENV
from tune_mnist.store.provenance import redacted

MARK = "tune_mnist"  # metadata key on every job this tool submits: its version
EXPERIMENT_KEY, SPACE_KEY = "tune_mnist_experiment", "tune_mnist_space"
RESUME_KEY = "tune_mnist_resume"  # the command that continues the job's sweep
# Seconds Ray waits between the SIGTERM of `stop` and a SIGKILL (Ray's default: 3 s).
# Tune needs longer to stop its trials and save the experiment.
STOP_GRACE_S = 60
# Exit codes a finished job's driver gives (cli.py): 3 incomplete, 143 stopped by SIGTERM
EXIT_STOPPED = 143


@dataclass(frozen=True)
class JobInfo:
    """One job of this tool on the cluster, as the job server reports it."""

    job_id: str  # the submission id
    status: str  # PENDING, RUNNING, SUCCEEDED, FAILED or STOPPED
    space: str | None  # the space's name
    experiment: str | None  # where the driver writes the experiment
    entrypoint: str
    start_time: float | None  # seconds since the epoch
    end_time: float | None
    message: str | None  # the job server's word on the state
    exit_code: int | None  # the driver's, once it ended
    resume: str | None = None  # the command that continues its sweep once it stopped

    @property
    def finished(self) -> bool:
        """Whether the job has ended (succeeded, failed or stopped)."""
        return self.status in ("SUCCEEDED", "FAILED", "STOPPED")

    @property
    def cli_exit_code(self) -> int:
        """What `tune-mnist sweep` itself would have exited with, as far as it is known."""
        if self.status == "SUCCEEDED":
            return 0
        if self.status == "STOPPED":
            return EXIT_STOPPED
        return self.exit_code if self.exit_code else 1


@dataclass(frozen=True)
class Submission:
    """What `submit` sent: the job's id, the command the cluster runs, where results go."""

    job_id: str
    entrypoint: str
    experiment: str  # <storage_path>/<name> on the cluster's filesystem (or URI)
    shipped: bool  # the package went with the job


def check_job_address(address: str | None) -> str:
    """The job server's URL, http(s)://HOST:PORT, checked to answer (one line if not)."""
    if not address:
        raise TuneMnistError(
            "--address: the cluster's job server (its dashboard), e.g. http://HEAD:8265, "
            "or $RAY_API_SERVER_ADDRESS"
        )
    parts = urlsplit(address)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TuneMnistError(
            f"--address {address}: expected the dashboard's URL, e.g. http://HEAD:8265"
        )
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise TuneMnistError(f"--address {address}: the port is not a number") from None
    try:  # requests would wait for a host that drops packets far longer
        socket.create_connection((parts.hostname, port), timeout=5).close()
    except OSError as e:
        reason = e.strerror or type(e).__name__
        raise TuneMnistError(f"cannot reach the Ray job server at {address}: {reason}") from None
    return address.rstrip("/")


@contextlib.contextmanager
def _explicit_address() -> Iterator[None]:
    # JobSubmissionClient lets these override the address it is given; ours is explicit.
    saved = {
        k: os.environ.pop(k) for k in ("RAY_API_SERVER_ADDRESS", "RAY_ADDRESS") if k in os.environ
    }
    try:
        yield
    finally:
        os.environ.update(saved)


def connect(address: str | None):
    """A JobSubmissionClient for the job server at `address`; one-line errors."""
    address = check_job_address(address)
    from ray.dashboard.modules.job import sdk
    from ray.job_submission import JobSubmissionClient

    if sdk.requests is None or sdk.aiohttp is None:  # Ray's client needs both
        raise TuneMnistError(
            "Ray's job client needs aiohttp and requests: pip install 'tune-mnist[jobs]'"
        )
    try:
        with _explicit_address():
            return JobSubmissionClient(address)
    except Exception as e:
        raise _job_error(e, address) from None


def _job_error(error: Exception, address: str, job_id: str | None = None) -> TuneMnistError:
    """Ray's exceptions (ConnectionError, RuntimeError with the HTTP status) as one line."""
    text = str(error)
    # 401/403 from the server; or Ray's token loader, before any request, finding none
    if any(word in text.lower() for word in ("401", "403", "authentication", "auth_token")):
        return TuneMnistError(
            f"the Ray job server at {address} requires a token and none was accepted: "
            "set RAY_AUTH_MODE=token and the cluster's token in RAY_AUTH_TOKEN, "
            "RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token"
        )
    if job_id and "404" in text:
        return TuneMnistError(
            f"no job {job_id} on {address}: `tune-mnist jobs --address {address}` lists them"
        )
    return TuneMnistError(f"Ray job server at {address}: {first_line(error)}")


def _info(details) -> JobInfo:
    meta = details.metadata or {}
    return JobInfo(
        job_id=details.submission_id or details.job_id or "",
        status=str(details.status),
        space=meta.get(SPACE_KEY),
        experiment=meta.get(EXPERIMENT_KEY),
        entrypoint=details.entrypoint,
        start_time=details.start_time / 1000 if details.start_time else None,
        end_time=details.end_time / 1000 if details.end_time else None,
        message=details.message,
        exit_code=getattr(details, "driver_exit_code", None),
        resume=meta.get(RESUME_KEY),
    )


def list_jobs(address: str | None) -> list[JobInfo]:
    """This tool's jobs on the cluster, oldest first (other jobs are left out)."""
    client = connect(address)
    try:
        found = client.list_jobs()
    except Exception as e:
        raise _job_error(e, client.get_address()) from None
    mine = [_info(d) for d in found if (d.metadata or {}).get(MARK)]
    return sorted(mine, key=lambda j: j.start_time or 0)


def job_info(address: str | None, job_id: str) -> JobInfo:
    """One job's state; a job id the server does not know is one line."""
    client = connect(address)
    try:
        return _info(client.get_job_info(job_id))
    except Exception as e:
        raise _job_error(e, client.get_address(), job_id) from None


def job_logs(address: str | None, job_id: str) -> str:
    """Everything the job's driver printed so far."""
    client = connect(address)
    try:
        return client.get_job_logs(job_id)
    except Exception as e:
        raise _job_error(e, client.get_address(), job_id) from None


def follow_logs(address: str | None, job_id: str) -> Iterator[str]:
    """The job's output as it comes, from the start, until the job ends."""
    client = connect(address)
    try:
        client.get_job_info(job_id)  # an unknown id: one line, not a closed socket
    except Exception as e:
        raise _job_error(e, client.get_address(), job_id) from None
    stream = client.tail_job_logs(job_id)
    loop = asyncio.new_event_loop()
    try:
        while True:
            try:
                yield loop.run_until_complete(anext(stream))
            except StopAsyncIteration:
                return
            except Exception as e:
                raise _job_error(e, client.get_address(), job_id) from None
    finally:
        with contextlib.suppress(Exception):
            loop.run_until_complete(stream.aclose())
        loop.close()


def stop_job(address: str | None, job_id: str, wait_s: float = STOP_GRACE_S + 15) -> JobInfo:
    """Stop a running job of this tool and wait (up to `wait_s`) until its driver is gone:
    Tune saves the experiment, which stays resumable. Other jobs are refused."""
    client = connect(address)
    where = client.get_address()
    try:
        details = client.get_job_info(job_id)
        if not (details.metadata or {}).get(MARK):
            raise TuneMnistError(f"job {job_id} on {where} was not submitted by tune-mnist")
        client.stop_job(job_id)
        deadline = time.monotonic() + wait_s
        info = _info(client.get_job_info(job_id))
        while not info.finished and time.monotonic() < deadline:
            time.sleep(0.5)
            info = _info(client.get_job_info(job_id))
        return info
    except TuneMnistError:
        raise
    except Exception as e:
        raise _job_error(e, where, job_id) from None


def space_files(space: Path) -> list[Path]:
    """The files a space file refers to in its own folder (own models and trainable, its
    datasets, its reference table), relative to it: what a job ships beside the space.
    Files outside that folder must be on the cluster at the paths the space names."""
    from tune_mnist.spec.configs import is_file_reference, is_reference
    from tune_mnist.spec.spaces import load_space

    spec = load_space(space)
    named = [spec.space.trainable, *(getattr(t, "model", "") for t in spec.trials)]
    paths = [Path(r.rpartition(":")[0]) for r in named if is_reference(r) and is_file_reference(r)]
    paths += [
        Path(files.path) for files in spec.space.datasets.values() if files.kind != "torchvision"
    ]
    paths += [Path(spec.space.reference)] if spec.space.reference else []
    folder = space.parent.absolute()
    inside = {
        p.absolute().relative_to(folder) for p in paths if p.absolute().is_relative_to(folder)
    }
    return sorted(inside)


def submit(
    address: str | None,
    space: str,
    space_name: str,
    options: list[str],
    experiment: str,
    ship: bool = False,
    resume: str | None = None,
) -> Submission:
    """Submit `tune-mnist sweep SPACE OPTIONS...` as a job; return at once.

    `space`: a built-in name or a space file (sent with the job); `options`: the sweep's
    options, each an argument; `experiment`: where the driver will write, and `resume`:
    the command that continues it (both kept in the job's metadata for `jobs` and `stop`).
    """
    client = connect(address)
    from tune_mnist import __version__

    with tempfile.TemporaryDirectory(prefix="tune-mnist-job-") as staging:
        runtime_env: dict = {"env_vars": {"RAY_JOB_STOP_WAIT_TIME_S": str(STOP_GRACE_S)}}
        argument = space
        if Path(space).is_file():  # the cluster cannot read this machine's files
            work = Path(staging, "space")
            for relative in [Path(Path(space).name), *space_files(Path(space))]:
                (work / relative).parent.mkdir(parents=True, exist_ok=True)
                copy = shutil.copytree if (Path(space).parent / relative).is_dir() else shutil.copy
                copy(Path(space).parent / relative, work / relative)
            runtime_env["working_dir"] = str(work)
            # workers find a shipped file model under their copy of it (models.shipped_copy)
            runtime_env["env_vars"][SHIPPED_ENV] = "1"
            argument = Path(space).name
        command = ["tune-mnist"]
        if ship:
            runtime_env["py_modules"] = [str(package_copy(Path(staging, "package")))]
            command = ["python", "-m", "tune_mnist"]
        entrypoint = shlex.join([*command, "sweep", argument, *options])
        if redacted(entrypoint) != entrypoint:  # Ray keeps the entrypoint with the job
            raise TuneMnistError(
                "submit: no user or password in a URI of the sweep's options: the job's "
                "command line is kept by Ray; pass credentials in the environment"
            )
        job_id = f"tune-mnist-{_slug(space_name)}-{secrets.token_hex(4)}"
        metadata = {MARK: __version__, EXPERIMENT_KEY: experiment, SPACE_KEY: space_name}
        if resume:
            metadata[RESUME_KEY] = resume
        try:
            with _explicit_address():
                client.submit_job(
                    entrypoint=entrypoint,
                    submission_id=job_id,
                    runtime_env=runtime_env,
                    metadata=metadata,
                )
        except Exception as e:
            raise _job_error(e, client.get_address()) from None
    return Submission(job_id, entrypoint, experiment, ship)


def package_copy(folder: Path) -> Path:
    """This tune_mnist package as it imports here, built-in spaces inside, to ship.

    Editable installs keep the built-in spaces outside the package (pyproject maps them);
    the copy puts them where `tune_mnist.search_spaces` finds them on the cluster.
    """
    import importlib.resources

    import tune_mnist

    source = Path(tune_mnist.__file__).parent
    target = folder / "tune_mnist"
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    spaces = Path(str(importlib.resources.files("tune_mnist.search_spaces")))
    if spaces.resolve() != (target / "search_spaces").resolve():
        shutil.copytree(
            spaces,
            target / "search_spaces",
            dirs_exist_ok=True,
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
        )
    (target / "search_spaces" / "__init__.py").touch()
    return target


def cluster_path(value: str, option: str) -> str:
    """A path the cluster's driver reads or writes: absolute (its own filesystem) or a URI.

    A relative path would be resolved in the job's scratch folder, which Ray deletes.
    """
    if "://" in value or PurePosixPath(value).is_absolute():
        return value
    raise TuneMnistError(
        f"{option} {value}: a job resolves paths on the cluster, in a scratch folder: "
        "give an absolute path there (or a URI)"
    )


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-")[:40] or "sweep"
