"""docker/ cannot run here (no Docker engine): check what can be checked without one."""

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

DOCKER = Path(__file__).resolve().parents[1] / "docker"


def compose() -> dict:
    return yaml.safe_load((DOCKER / "docker-compose.yml").read_text())


def test_compose_publishes_ports_on_loopback_only():
    ports = [p for service in compose()["services"].values() for p in service.get("ports", [])]
    assert ports and all(p.startswith("127.0.0.1:") for p in ports)


RAY_NODES = ("head", "gpu-worker", "cpu-worker")


def test_compose_nodes_share_storage_and_a_large_shm():
    services = compose()["services"]
    for name in RAY_NODES:
        service = services[name]
        assert service["shm_size"] == "16gb", name
        assert "results:/results" in service["volumes"], name
        assert service["env_file"] == ["ray.env", "storage.env"], name


def test_compose_runs_object_storage_and_mlflow_next_to_the_cluster():
    services = compose()["services"]
    assert services["minio"]["image"].startswith("minio/minio:RELEASE.")
    assert "mc mb --ignore-existing store/tune-mnist" in services["make-bucket"]["entrypoint"]
    assert services["mlflow"]["command"].split()[:2] == ["mlflow", "server"]
    assert "--backend-store-uri sqlite:////mlflow/mlflow.db" in services["mlflow"]["command"]
    for name in RAY_NODES:  # every node reaches the bucket and the tracking server
        env = services[name]["environment"]
        assert env["AWS_ENDPOINT_URL"] == "http://minio:9000"
        assert env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert '".[tracking,jobs]"' in (DOCKER / "Dockerfile").read_text()  # mlflow, the job server


def test_storage_keys_are_an_uncommitted_env_file():
    example = (DOCKER / "storage.env.example").read_text()
    assert "AWS_ACCESS_KEY_ID=" in example and "MINIO_ROOT_PASSWORD=" in example
    assert "docker/storage.env" in (DOCKER.parent / ".gitignore").read_text().splitlines()


def test_compose_gpu_workers_reserve_gpus_and_the_cpu_worker_is_marked():
    services = compose()["services"]
    devices = services["gpu-worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and devices[0]["capabilities"] == ["gpu"]
    assert '"svm_worker": 8' in services["cpu-worker"]["command"]


def test_token_file_is_an_uncommitted_env_file():
    assert "RAY_AUTH_MODE=token" in (DOCKER / "ray.env.example").read_text()
    assert "docker/ray.env" in (DOCKER.parent / ".gitignore").read_text().splitlines()


def test_kuberay_manifest():
    job = yaml.safe_load((DOCKER / "kuberay-rayjob.yaml").read_text())
    assert job["apiVersion"] == "ray.io/v1" and job["kind"] == "RayJob"
    assert job["spec"]["entrypoint"].startswith("tune-mnist sweep q1a")
    groups = {g["groupName"]: g for g in job["spec"]["rayClusterSpec"]["workerGroupSpecs"]}
    gpu_limits = groups["gpu"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert gpu_limits["nvidia.com/gpu"] == "1"
    assert "svm_worker" in groups["svm-cpu"]["rayStartParams"]["resources"]
    env = groups["gpu"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "RAY_AUTH_MODE", "value": "token"} in env


def test_dockerfile_runs_as_a_non_root_user():
    text = (DOCKER / "Dockerfile").read_text()
    assert "\nUSER ray\n" in text and "torch==2.14.1" in text


@pytest.mark.skipif(
    not shutil.which("docker-compose"), reason="Debian's docker-compose not installed"
)
def test_docker_compose_config_validates(tmp_path):
    folder = Path(shutil.copytree(DOCKER, tmp_path / "docker"))
    shutil.copy(folder / "ray.env.example", folder / "ray.env")
    shutil.copy(folder / "storage.env.example", folder / "storage.env")
    run = subprocess.run(
        ["docker-compose", "-f", str(folder / "docker-compose.yml"), "config"],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    assert "svm_worker" in run.stdout and "minio" in run.stdout and "mlflow" in run.stdout
