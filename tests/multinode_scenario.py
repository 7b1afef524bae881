"""Run inside a private network namespace (`unshare -n`): a real two-node Ray cluster on
loopback with token authentication, the CLI's sweeps against it, then a clean stop.

Usage: unshare -n python tests/multinode_scenario.py DATA_DIR OUT_DIR SVM_SPACE RESNET_SPACE
Writes OUT_DIR/nodes.json, OUT_DIR/runs/<experiments>, OUT_DIR/*.log. Not a test module:
tests/test_cluster.py runs it and checks what it wrote.
"""

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PORT = 6390
ADDRESS = f"127.0.0.1:{PORT}"


def start(args: list[str], log: Path) -> subprocess.Popen:
    """`ray start ... --block` in its own session, so stopping it stops exactly its processes."""
    return subprocess.Popen(
        ["ray", "start", "--block", *args],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop(process: subprocess.Popen) -> None:
    for sig, wait_s in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        if process.poll() is not None:
            return
        os.killpg(process.pid, sig)
        try:
            process.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            continue


def tune_mnist(out: Path, name: str, *args: str) -> int:
    with (out / f"{name}.log").open("w") as log:
        return subprocess.run(
            [sys.executable, "-m", "tune_mnist", *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=400,
        ).returncode


def wait_for_nodes(count: int, timeout_s: float = 60) -> list[dict]:
    import ray

    ray.init(address=ADDRESS, logging_level="ERROR")
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            nodes = [n for n in ray.nodes() if n["Alive"]]
            if len(nodes) >= count:
                return [{"node_id": n["NodeID"], "resources": n["Resources"]} for n in nodes]
            time.sleep(0.5)
        raise TimeoutError(f"{count} nodes did not join")
    finally:
        ray.shutdown()


def main(data: str, out: str, svm_space: str, resnet_space: str) -> None:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    token = out / "auth_token"
    token.write_text(secrets.token_hex(32))
    # Token auth on, explicitly, for every process here; worker nodes need clusters enabled.
    os.environ |= {
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN_PATH": str(token),
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "1",
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    # A temp dir of its own, so the cluster's files (ray_current_cluster among them) never
    # point a later local `ray.init()` at this cluster once it is gone.
    # (set on the head only; short, as it holds Unix sockets, limited to 107 bytes a path)
    temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    common = ["--node-ip-address=127.0.0.1", "--num-cpus=1", "--disable-usage-stats"]
    head = start(
        [
            "--head",
            f"--port={PORT}",
            "--num-gpus=2",
            "--include-dashboard=false",
            f"--temp-dir={temp}",
            *common,
        ],
        out / "head.log",
    )
    worker = None
    try:
        time.sleep(3)
        worker = start(
            [f"--address={ADDRESS}", '--resources={"svm_worker": 1}', *common], out / "worker.log"
        )
        (out / "nodes.json").write_text(json.dumps(wait_for_nodes(2)))
        codes = {
            "cluster": tune_mnist(out, "cluster", "cluster", svm_space, "--address", ADDRESS),
            "svm": tune_mnist(
                out,
                "svm",
                "sweep",
                svm_space,
                "--address",
                ADDRESS,
                "--data-dir",
                data,
                "--storage-path",
                str(out / "runs"),
            ),
            "resnet": tune_mnist(
                out,
                "resnet",
                "sweep",
                resnet_space,
                "--address",
                ADDRESS,
                "--gpus-per-trial",
                "0.25",
                "--data-dir",
                data,
                "--storage-path",
                str(out / "runs"),
            ),
        }
        # The same cluster without the token: a clear error, not a hang or a traceback.
        no_token = {**os.environ, "RAY_AUTH_TOKEN_PATH": str(out / "missing"), "HOME": str(out)}
        with (out / "no_token.log").open("w") as log:
            codes["no_token"] = subprocess.run(
                [sys.executable, "-m", "tune_mnist", "cluster", "--address", ADDRESS],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=no_token,
                timeout=180,
            ).returncode
        (out / "codes.json").write_text(json.dumps(codes))
    finally:
        if worker:
            stop(worker)
        stop(head)
        shutil.rmtree(temp, ignore_errors=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
