"""Experiment tracking in MLflow: one parent run per sweep, one nested run per trial.

The parent run holds what the sweep set out to do (the space and settings as params, the
git commit as MLflow's own `mlflow.source.git.commit` tag, the space as `space.json`) and,
when the sweep ends, its report (tables and figures) as artifacts under `report/`. Each
trial is a run of its own, nested under the parent by MLflow's `mlflow.parentRunId` tag,
logged by Ray Tune's MLflowLoggerCallback on the driver: the trial's config as params,
every report as metrics with the epoch as step, so a metric's last value is the final one.

Only the driver talks to the server (trials report to it through Tune). A resumed sweep
finds its parent run again by the `tune_mnist.experiment` tag and goes on in it; Tune
restores the callback it pickled, and trials that run again get new nested runs.

mlflow is optional: `pip install 'tune-mnist[tracking]'`.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tune_mnist.errors import TuneMnistError, first_line

EXTRA = "tracking"
URI_ENV = "MLFLOW_TRACKING_URI"
EXPERIMENT_TAG, ROLE_TAG = "tune_mnist.experiment", "tune_mnist.role"
PARENT_TAG, COMMIT_TAG = "mlflow.parentRunId", "mlflow.source.git.commit"
MAX_PARAM = 6000  # characters in an MLflow param value (MLflow 2.x and 3.x)
CHECK_TIMEOUT_S = 10  # for the reachability check before a sweep


def require_mlflow() -> None:
    """One line naming the extra when mlflow is not installed."""
    try:
        import mlflow  # noqa: F401
    except ImportError:
        raise TuneMnistError(
            f"--mlflow needs the mlflow package: pip install 'tune-mnist[{EXTRA}]'"
        ) from None


def resolve_uri(enabled: bool, uri: str | None) -> str | None:
    """The tracking URI a sweep logs to: `uri` (--mlflow-uri), else with `enabled` (--mlflow)
    $MLFLOW_TRACKING_URI; None when tracking was not asked for."""
    if uri:
        return _without_credentials(uri, "--mlflow-uri")
    if not enabled:
        return None
    if found := os.environ.get(URI_ENV):
        return _without_credentials(found, URI_ENV)
    raise TuneMnistError(f"--mlflow: no tracking server: add --mlflow-uri URI or set {URI_ENV}")


def _without_credentials(uri: str, where: str) -> str:
    """The URI, refused when it carries a user or password: it is saved in the experiment,
    its provenance and report, and MLflow's own params; credentials go in the environment."""
    if urlsplit(uri).password is not None or "@" in urlsplit(uri).netloc:
        raise TuneMnistError(
            f"{where}: no credentials in the tracking URI (it is written down with the "
            "experiment); set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD instead"
        )
    return uri


@contextlib.contextmanager
def _quick_requests() -> Iterator[None]:
    """MLflow retries a failed request 7 times with backoff (minutes): once, briefly, here."""
    keys = ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT")
    saved = {k: os.environ.get(k) for k in keys}
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(CHECK_TIMEOUT_S)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def check_server(uri: str) -> None:
    """Before a sweep starts: mlflow is installed and the tracking server answers."""
    require_mlflow()
    from mlflow.tracking import MlflowClient

    parts = urlsplit(uri)
    if parts.scheme in ("http", "https"):
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            socket.create_connection((parts.hostname, port), timeout=CHECK_TIMEOUT_S).close()
        except OSError as e:
            reason = e.strerror or type(e).__name__
            raise TuneMnistError(f"cannot reach the MLflow server at {uri}: {reason}") from None
    try:
        with _quick_requests():
            MlflowClient(uri).search_experiments(max_results=1)
    except Exception as e:  # MlflowException, requests' errors: one line each
        raise TuneMnistError(
            f"the MLflow server at {uri} did not answer: {first_line(e)}"
        ) from None


def _flat(record: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested settings as MLflow params: {"options": {"preload": False}} -> options.preload."""
    flat = {}
    for key, value in record.items():
        if isinstance(value, Mapping) and value:
            flat |= _flat(value, f"{prefix}{key}.")
        else:
            text = value if isinstance(value, str) else json.dumps(value, default=str)
            flat[f"{prefix}{key}"] = text[:MAX_PARAM]
    return flat


@dataclass(frozen=True)
class SweepRun:
    """A sweep's parent run in MLflow."""

    uri: str  # the tracking URI
    experiment_name: str  # the MLflow experiment: the tune-mnist experiment's name
    run_id: str
    location: str  # the tune-mnist experiment: folder or URI

    def callback(self):
        """The Tune callback that logs each trial as a run nested in this one."""
        from tune_mnist.run.mlflow_runs import TrialRuns

        return TrialRuns(
            self.uri,
            experiment_name=self.experiment_name,
            tags={PARENT_TAG: self.run_id, EXPERIMENT_TAG: self.location, ROLE_TAG: "trial"},
        )

    def finish(self, report: Path | None, complete: bool) -> None:
        """Attach the report's tables and figures, and end the run (FAILED if not complete)."""
        from mlflow.tracking import MlflowClient

        client = MlflowClient(self.uri)
        if report is not None and report.is_dir():
            client.log_artifacts(self.run_id, str(report), "report")
        client.set_terminated(self.run_id, "FINISHED" if complete else "FAILED")

    def stopped(self) -> None:
        """End the run as KILLED: the sweep was interrupted (resume goes on in it)."""
        from mlflow.tracking import MlflowClient

        with contextlib.suppress(Exception):  # already leaving on an error of its own
            MlflowClient(self.uri).set_terminated(self.run_id, "KILLED")


def start_sweep_run(uri: str, meta, location: str) -> SweepRun:
    """The parent run of the sweep at `location`: its earlier run when resuming, else new.

    `meta` is the experiment's ExperimentMeta (the space, settings, trials, provenance).
    """
    from mlflow.entities import Param, RunStatus
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    name = location.rstrip("/").rpartition("/")[2]
    found = client.get_experiment_by_name(name)
    experiment_id = found.experiment_id if found else client.create_experiment(name)
    earlier = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{EXPERIMENT_TAG}` = '{location}' and tags.`{ROLE_TAG}` = 'sweep'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if earlier:
        run_id = earlier[0].info.run_id
        client.update_run(run_id, status=RunStatus.to_string(RunStatus.RUNNING))
        return SweepRun(uri, name, run_id, location)
    tags = {
        EXPERIMENT_TAG: location,
        ROLE_TAG: "sweep",
        COMMIT_TAG: str(meta.provenance.get("git_commit") or "unknown"),
        "space_source": meta.space_source,
        "smoke": str(meta.smoke).lower(),
    }
    run = client.create_run(experiment_id, run_name=name, tags=tags)
    params = _flat({"space": meta.space.model_dump(), "settings": meta.settings.saved()})
    params["trials"] = str(len(meta.trials))
    items = [Param(k, v) for k, v in params.items()]
    for start in range(0, len(items), 100):  # MLflow takes at most 100 params a batch
        client.log_batch(run.info.run_id, params=items[start : start + 100])
    client.log_dict(run.info.run_id, meta.space.model_dump(), "space.json")
    return SweepRun(uri, name, run.info.run_id, location)


def __getattr__(name: str):
    """TrialRuns, loaded on first use: its base class imports mlflow (about 1 s), which a
    sweep that logs nowhere should not pay. Experiments pickled when TrialRuns lived here
    still find it under this name."""
    if name == "TrialRuns":
        from tune_mnist.run.mlflow_runs import TrialRuns

        return TrialRuns
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
