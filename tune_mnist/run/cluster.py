"""The Ray cluster: joining it (or starting a local one), what it offers, where trials go.

ResNet trials ask for a GPU fraction on clusters with GPUs and for CPUs on clusters
without. SVM trials ask for CPUs, plus a sliver of a custom resource (`svm_worker` by
default) when some node declares it, which keeps them on the CPU workers that do, plus
their estimated peak memory (Ray's `memory` resource, bytes; svm.estimate_memory), so a
node never runs more SVM trials than its memory holds. A space whose trials fit on no
node is refused here, before Ray would leave it PENDING forever.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import signal
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import ray

from tune_mnist.errors import TuneMnistError, first_line
from tune_mnist.run import session
from tune_mnist.spec.spaces import Spec
from tune_mnist.store.settings import SweepSettings
from tune_mnist.store.storage import is_uri
from tune_mnist.train.svm import FULL_SIZES, BackendChoice, GiB, request_memory

# Ray's built-in resources; anything else a node declares is a custom resource.
_BUILTIN = {"CPU", "GPU", "memory", "object_store_memory"}
MARKER_AMOUNT = 0.01  # of the SVM marker per trial: CPUs, not the marker, bound concurrency


def cluster_nodes() -> pd.DataFrame:
    """The alive nodes of the connected cluster: id, address, CPUs, GPUs, custom resources."""
    rows = []
    for node in ray.nodes():
        if not node["Alive"]:
            continue
        resources = node["Resources"]
        custom = {
            k: v
            for k, v in resources.items()
            if k not in _BUILTIN and not k.startswith(("node:", "accelerator_type:"))
        }
        rows.append(
            {
                "node_id": node["NodeID"],
                "address": node["NodeManagerAddress"],
                "hostname": node["NodeManagerHostname"],
                "cpus": resources.get("CPU", 0.0),
                "gpus": resources.get("GPU", 0.0),
                "memory": resources.get("memory", 0.0),  # bytes Ray may hand to tasks
                "custom": custom,
            }
        )
    return pd.DataFrame(rows)


@dataclass
class Placement:
    """What one kind of trial asks for, and the nodes that can hold it."""

    kind: str  # "resnet", "svm" or "custom"
    asks: dict[str, float]  # as given to tune.with_resources, memory aside
    nodes: list[str]  # node ids where one such trial fits
    # SVM trials: the backend and memory of each (dataset, train_samples) of the space
    svm: dict[tuple[str, int], BackendChoice] = field(default_factory=dict)

    def describe(self) -> str:
        asked = ", ".join(
            f"{v:g} {k.upper() if k in ('cpu', 'gpu') else k}" for k, v in self.asks.items()
        )
        if self.svm:
            least, most = (f(c.estimate.bytes for c in self.svm.values()) for f in (min, max))
            span = f"{least / GiB:.1f}" + (f"-{most / GiB:.1f}" if most > least else "")
            asked += f" and {span} GiB of memory"
        return f"{self.kind} trials ask for {asked} ({len(self.nodes)} node(s) can run them)"

    def asks_for(self, trial: dict) -> dict[str, float]:
        """What one trial (a trial_to_dict) asks Ray for: SVM trials add their memory."""
        choice = self.svm.get((trial.get("dataset"), trial.get("train_samples")))
        return {**self.asks, "memory": float(choice.estimate.bytes)} if choice else self.asks


def plan(
    kind: str,
    nodes: pd.DataFrame,
    *,
    gpu: float,
    cpu: float,
    gpu_explicit: bool,
    svm_cpus: float,
    svm_resource: str,
    svm_backend: str = "auto",
    svm_trials: dict[tuple[str, int], tuple[int, int, int]] | None = None,
) -> Placement:
    """The resources a kind of trial asks for on this cluster, refusing what fits nowhere.

    `svm_trials`: (dataset, train_samples) -> (images trained, test images, pixels) of
    each SVM configuration; their backend and memory are chosen against the largest node.
    """
    if kind in ("resnet", "custom"):  # a custom trainable may use a GPU as a ResNet does
        if nodes["gpus"].max() > 0:
            asks = {"gpu": gpu}
        elif gpu_explicit:
            raise TuneMnistError(
                f"--gpus-per-trial {gpu:g}: the cluster has no GPUs; leave it out to run "
                "ResNet trials on CPUs"
            )
        else:
            asks = {"cpu": cpu}
    else:
        marked = nodes["custom"].map(lambda c: c.get(svm_resource, 0) > 0)
        asks = {"cpu": svm_cpus, **({svm_resource: MARKER_AMOUNT} if marked.any() else {})}
    fits = nodes[[_fits(row, asks) for row in nodes.itertuples()]]
    if fits.empty:
        largest = (
            f"the largest node has {nodes['cpus'].max():g} CPUs and {nodes['gpus'].max():g} GPUs"
        )
        raise TuneMnistError(
            f"{kind} trials ask for {asks}, which fits on no node of the cluster ({largest})"
        )
    svm = plan_svm_memory(svm_backend, svm_trials or {}, fits) if kind == "svm" else {}
    if svm:
        most = max(c.estimate.bytes for c in svm.values())
        fits = fits[fits["memory"] >= most]
    return Placement(kind, asks, fits["node_id"].tolist(), svm)


def plan_svm_memory(
    backend: str, trials: dict[tuple[str, int], tuple[int, int, int]], nodes: pd.DataFrame
) -> dict[tuple[str, int], BackendChoice]:
    """Each SVM configuration's backend and memory (svm.request_memory) on the largest of
    `nodes`; a configuration that fits on none is refused with the numbers."""
    budget = int(nodes["memory"].max())
    where = "this machine" if len(nodes) == 1 else "the largest node"
    plans = {}
    for (dataset, samples), (n, n_test, pixels) in trials.items():
        choice = request_memory(backend, n, n_test, pixels, budget)
        if not choice.fits:
            using = f"--svm-backend {backend}" if backend != "auto" else "even libsvm"
            hint = ": use --svm-backend auto or libsvm" if backend == "precomputed" else ""
            raise TuneMnistError(
                f"{using} needs {choice.estimate.bytes / GiB:.1f} GiB for {n:,} images of "
                f"{dataset}; {where} has {budget / GiB:.1f} GiB available{hint}"
            )
        plans[(dataset, samples)] = choice
    return plans


def svm_sizes(spec: Spec, sizes: dict[str, tuple[int, int, int]] | None = None) -> dict:
    """(dataset, train_samples) -> (images trained, test images, pixels) of a space's SVMs.

    `sizes`: each dataset's (train, test, pixels) as loaded; default the full datasets.
    """
    found = {}
    for trial in spec.trials:
        if trial.trainable == "svm":
            train, test, pixels = (sizes or {}).get(trial.dataset, FULL_SIZES)
            found[(trial.dataset, trial.train_samples)] = (
                min(trial.train_samples, train),
                test,
                pixels,
            )
    return found


def _fits(node, asks: dict[str, float]) -> bool:
    have = {"cpu": node.cpus, "gpu": node.gpus, **node.custom}
    return all(have.get(key, 0) >= amount for key, amount in asks.items())


def check_shared_storage(storage: Path | str, nodes: pd.DataFrame) -> None:
    """On a multi-node cluster, check that every node sees the storage folder.

    Ray's own failure ("Unable to set up cluster storage") comes late and says little.
    Object storage (a URI, checked by storage.check_storage) is every node's by design.
    """
    if len(nodes) < 2 or is_uri(storage):
        return
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    marker = Path(storage) / f".tune-mnist-visible-{uuid.uuid4().hex}"
    marker.write_text("")
    try:
        checks = {
            node.node_id: _sees.options(
                scheduling_strategy=NodeAffinitySchedulingStrategy(node.node_id, soft=False)
            ).remote(str(marker))
            for node in nodes.itertuples()
        }
        blind = [
            nodes.set_index("node_id").loc[n, "address"]
            for n, ref in checks.items()
            if not ray.get(ref, timeout=60)
        ]
    finally:
        marker.unlink(missing_ok=True)
    if blind:
        raise TuneMnistError(
            f"storage path {storage} is not visible from node(s) {', '.join(blind)}: a "
            "multi-node sweep needs --storage-path on a filesystem every node mounts "
            "(NFS, a shared volume) at the same path"
        )


@ray.remote(num_cpus=0)
def _sees(path: str) -> bool:
    return Path(path).exists()


def trial_resources(
    spec: Spec, settings: SweepSettings, sizes: dict[str, tuple[int, int, int]] | None = None
) -> Placement:
    """What this space's trials ask for on the connected cluster, and where they fit.

    `sizes`: each dataset's (train, test, pixels) as the sweep loaded it; default the full
    datasets (what `tune-mnist cluster SPACE` assumes).
    """
    gpu = settings.gpus_per_trial
    return plan(
        spec.trainable,
        cluster_nodes(),
        gpu=gpu if gpu is not None else spec.space.resources.gpu,
        cpu=spec.space.resources.cpu,
        gpu_explicit=gpu is not None,
        svm_cpus=settings.svm_cpus,
        svm_resource=settings.svm_resource,
        svm_backend=settings.svm_backend,
        svm_trials=svm_sizes(spec, sizes),
    )


def resolve_address(address: str | None) -> str | None:
    """The cluster to join (`address`, else $RAY_ADDRESS), checked reachable; None: a local Ray."""
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        check_reachable(address)
    return address


def check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fail fast, with one line, when nothing listens at a cluster's host:port.

    Ray itself retries an unreachable address for many minutes before it gives up.
    """
    if address in ("auto", "local"):
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except ValueError:
        raise TuneMnistError(f"--address {address}: expected HOST:PORT") from None
    except OSError as e:
        reason = e.strerror or type(e).__name__
        raise TuneMnistError(f"cannot connect to Ray at {address}: {reason}") from None


@contextlib.contextmanager
def ray_session(address: str | None, verbose: bool, dashboard: bool = False) -> Iterator[None]:
    """Join the cluster at `address` (see resolve_address), or start a local Ray for this
    sweep, with its dashboard on 127.0.0.1 if `dashboard`.

    A Ray already initialized in this process is used as it is and left running.
    """
    if ray.is_initialized():
        yield
        return
    level = logging.INFO if verbose else logging.ERROR
    if not verbose:  # Tune's newer console output prints its banner even at verbose=0
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
        # A failed trial is one line from Progress and its error.txt, not a traceback here.
        logging.getLogger("ray.tune").setLevel(logging.CRITICAL)
    try:
        if address:
            ray.init(address=address, logging_level=level, log_to_driver=verbose)
        else:
            make_token_private()
            # "local": always a new instance, never a cluster that `ray start` left behind
            ray.init(
                address="local",
                include_dashboard=dashboard,
                dashboard_host="127.0.0.1",
                logging_level=level,
                log_to_driver=verbose,
            )
    except Exception as e:  # ConnectionError, TimeoutError, auth failures: one line each
        if _caused_by(e, ray.exceptions.AuthenticationError):
            raise TuneMnistError(
                f"the Ray cluster at {address} requires a token and none was accepted: "
                "set RAY_AUTH_MODE=token and the cluster's token in RAY_AUTH_TOKEN, "
                "RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token"
            ) from None
        raise TuneMnistError(
            f"cannot connect to Ray at {address or 'a local instance'}: {first_line(e)}"
        ) from None
    if not address:
        _owner_only(Path(os.environ.get("RAY_AUTH_TOKEN_PATH", "~/.ray/auth_token")))
    previous = signal.signal(signal.SIGTERM, _stop_like_ctrl_c)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        ray.shutdown()


def dashboard_url() -> str | None:
    """The connected cluster's dashboard, http://HOST:PORT; None when it runs none."""
    try:
        url = ray._private.worker.get_dashboard_url()  # Ray's own accessor (ray.init's too)
    except Exception:  # not connected, or a Ray that keeps it elsewhere: nothing to say
        return None
    return f"http://{url}" if url and "://" not in url else url or None


def make_token_private(home: Path | None = None) -> Path | None:
    """Write the local Ray's token before ray.init would, readable by this user alone from
    the moment the file exists (Ray writes it with the process's umask, often world-readable,
    and _owner_only could only narrow it afterwards). Nothing when a token is given or
    exists, or token auth is off; the path written, else None."""
    if os.environ.get("RAY_AUTH_MODE", "token").lower() != "token":
        return None
    if os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH"):
        return None
    token = (home or Path.home()) / ".ray" / "auth_token"
    token.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:  # O_EXCL: two sweeps starting together keep one token
        fd = os.open(token, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return None
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32))
    return token


def _owner_only(token: Path) -> None:
    """Ray writes the local token readable by every user of the machine; keep it ours."""
    token = token.expanduser()
    if token.is_file():
        with contextlib.suppress(OSError):
            token.chmod(0o600)


def _stop_like_ctrl_c(signum, frame) -> None:
    # Ray's own SIGTERM handler in the driver aborts the process with a C++ stack dump
    # (exit 134) before Tune can save its state; Ctrl-C, instead, makes Tune stop
    # launching trials and save the experiment, so SIGTERM is turned into that.
    session.current().terminated = True
    os.kill(os.getpid(), signal.SIGINT)


def terminated() -> bool:
    """Whether a KeyboardInterrupt in this process came from SIGTERM rather than Ctrl-C."""
    return session.current().terminated


def _caused_by(error: BaseException | None, kind: type) -> bool:
    while error is not None:
        if isinstance(error, kind):
            return True
        error = error.__cause__ or error.__context__
    return False


@dataclass
class ClusterView:
    """The connected cluster's nodes, and where a space's trials would go."""

    nodes: pd.DataFrame  # cluster_nodes()
    placement: Placement | None  # for the space asked about, if any


def inspect_cluster(spec: Spec | None, settings: SweepSettings) -> ClusterView:
    """Join the cluster (settings.address, else $RAY_ADDRESS, else a local Ray) and describe it."""
    with ray_session(resolve_address(settings.address), settings.verbose):
        return ClusterView(cluster_nodes(), trial_resources(spec, settings) if spec else None)
