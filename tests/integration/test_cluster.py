"""A real two-node Ray cluster (head with 2 logical GPUs, a CPU worker marked for SVMs),
started with `ray start` inside a private network namespace: loopback only, token auth;
and the local Ray a sweep starts for itself."""

import json
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pandas as pd
import pytest
import ray

from tune_mnist import load_results
from tune_mnist.run.cluster import dashboard_url, ray_session

from ..conftest import TINY_RESNET, TINY_SVM, write_space

SCENARIO = Path(__file__).parents[1] / "multinode_scenario.py"


def can_unshare() -> bool:
    if not shutil.which("unshare"):
        return False
    return subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0


@pytest.fixture(scope="module")
def scenario(tmp_path_factory, tiny_data):
    if not can_unshare():
        pytest.skip("needs `unshare -n` (root on Linux)")
    folder = tmp_path_factory.mktemp("multinode")
    svm = write_space(folder, name="svm-tiny", **TINY_SVM)
    resnet_grid = {
        "dataset": ["mnist"],
        "batch_size": [32, 48],
        "seed": [0, 1, 2, 3],
        "epochs": [1],
    }
    resnet = write_space(folder, name="resnet-tiny", **{**TINY_RESNET, "grid": resnet_grid})
    out = folder / "out"
    run = subprocess.run(
        [
            "unshare",
            "-n",
            sys.executable,
            str(SCENARIO),
            str(tiny_data),
            str(out),
            str(svm),
            str(resnet),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    nodes = json.loads((out / "nodes.json").read_text())
    head = next(n["node_id"] for n in nodes if n["resources"].get("GPU"))
    worker = next(n["node_id"] for n in nodes if n["resources"].get("svm_worker"))
    return out, head, worker, json.loads((out / "codes.json").read_text())


def test_cluster_command_shows_both_nodes_and_where_svms_go(scenario):
    out, head, worker, codes = scenario
    assert codes["cluster"] == 0, (out / "cluster.log").read_text()
    text = (out / "cluster.log").read_text()
    assert "2 node(s)" in text and "svm_worker=1" in text
    # and the memory each SVM trial is estimated to need (svm.estimate_memory)
    assert re.search(
        r"svm trials ask for 1 CPU, 0\.01 svm_worker and [\d.-]+ GiB of memory "
        r"\(1 node\(s\) can run them\)",
        text,
    ), text
    placed = next(line for line in text.splitlines() if line.startswith("svm trials ask"))
    assert worker[:12] in placed and head[:12] not in placed


def test_svm_trials_run_on_the_cpu_worker(scenario):
    out, _, worker, codes = scenario
    assert codes["svm"] == 0, (out / "svm.log").read_text()
    svm = load_results(out / "runs" / "svm-tiny")
    assert len(svm) == 4 and set(svm["status"]) == {"finished"}
    assert set(svm["node_id"]) == {worker}
    assert (svm["assigned_gpus"] == 0).all()


def test_resnet_trials_share_logical_gpus_on_the_head(scenario):
    out, head, _, codes = scenario
    assert codes["resnet"] == 0, (out / "resnet.log").read_text()
    resnet = load_results(out / "runs" / "resnet-tiny")
    assert len(resnet) == 8 and set(resnet["status"]) == {"finished"}
    assert set(resnet["node_id"]) == {head}
    assert (resnet["assigned_gpus"] == 0.25).all()
    # several trials ran at the same time on one logical GPU
    spans = resnet[["gpu_ids", "started_at", "finished_at"]]
    overlaps = max(running_at_once(g) for _, g in spans.groupby("gpu_ids"))
    assert overlaps >= 2, spans.to_string()


def running_at_once(spans: pd.DataFrame) -> int:
    """The most spans (started_at, finished_at) that overlap at one moment."""
    return max(
        ((spans["started_at"] <= t) & (spans["finished_at"] > t)).sum() for t in spans["started_at"]
    )


def test_joining_without_the_token_is_one_clear_error(scenario):
    out, _, _, codes = scenario
    text = (out / "no_token.log").read_text()
    assert codes["no_token"] == 1, text
    assert "Traceback" not in text
    assert (
        text.strip()
        .splitlines()[-1]
        .startswith("error: the Ray cluster at 127.0.0.1:6390 requires a token")
    )


def test_results_record_where_every_trial_ran(scenario):
    out, *_ = scenario
    both = pd.concat([load_results(out / "runs" / n) for n in ("svm-tiny", "resnet-tiny")])
    assert both[["node_id", "hostname", "pid"]].notna().all().all()


def test_a_local_ray_runs_its_dashboard_only_when_asked():
    with ray_session(None, verbose=False):
        assert ray.is_initialized() and dashboard_url() is None
    assert not ray.is_initialized()
    with ray_session(None, verbose=False, dashboard=True):
        url = urlsplit(dashboard_url() or "")
        assert url.scheme == "http" and url.hostname == "127.0.0.1"
        # its HTTP server listens (a request would need the session's token: Ray keeps its
        # auth mode for the life of the process, so the test leaves it as it is)
        socket.create_connection((url.hostname, url.port), timeout=30).close()
    assert not ray.is_initialized()
