"""docker/ cannot run here (no Docker engine): check what can be checked without one.

The compose file, the KubeRay manifest and the MinIO policy are parsed; the shell that
the containers would run (the secrets guard, the head's and MLflow's commands, the MinIO
setup) runs here against stub `ray`, `mlflow` and `mc` commands.
"""

import configparser
import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

DOCKER = Path(__file__).resolve().parents[2] / "docker"
CHECK_SECRETS = DOCKER / "check-secrets.sh"


def compose() -> dict:
    return yaml.safe_load((DOCKER / "docker-compose.yml").read_text())


def kuberay() -> dict[str, dict]:
    documents = list(yaml.safe_load_all((DOCKER / "kuberay-rayjob.yaml").read_text()))
    kinds = {doc["kind"]: doc for doc in documents}
    assert len(kinds) == len(documents)
    return kinds


def env_file(path: Path) -> dict[str, str]:
    """An env file as compose reads it: KEY=VALUE lines; comments and blank lines skipped."""
    variables = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            variables[key.strip()] = value
    return variables


def example(name: str) -> dict[str, str]:
    return env_file(DOCKER / f"{name}.example")


def env_files(service: dict) -> list[str]:
    files = service.get("env_file", [])
    return [files] if isinstance(files, str) else files


def checked_variables(service: dict) -> list[str]:
    """The variables the service's entrypoint hands to check-secrets (before `--`)."""
    entrypoint = service["entrypoint"]
    start = next(i for i, arg in enumerate(entrypoint) if arg.endswith("check-secrets"))
    return entrypoint[start + 1 : entrypoint.index("--", start)]


def real_values(variables: dict[str, str]) -> dict[str, str]:
    return {key: f"real-{key.lower()}-0123456789" for key in variables}


def stub(folder: Path, name: str, script: str) -> None:
    path = folder / name
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def shell_of(command: list[str]) -> str:
    """A compose `sh -c` command as the container's shell gets it ($$ is compose's $)."""
    assert command[:2] == ["sh", "-c"]
    return command[2].replace("$$", "$")


RAY_NODES = ("head", "gpu-worker", "cpu-worker")
SHELLS = [shell for shell in ("bash", "sh") if shutil.which(shell)]  # sh: MinIO's images


# --- the compose file ---


def test_compose_publishes_ports_on_loopback_only():
    ports = [p for service in compose()["services"].values() for p in service.get("ports", [])]
    assert ports and all(p.startswith("127.0.0.1:") for p in ports)


def test_compose_nodes_share_storage_and_a_large_shm():
    services = compose()["services"]
    for name in RAY_NODES:
        service = services[name]
        assert service["shm_size"] == "16gb", name
        assert "results:/results" in service["volumes"], name
        assert service["env_file"] == ["ray.env", "storage.env", "mlflow.env"], name


def test_compose_runs_object_storage_and_mlflow_next_to_the_cluster():
    services = compose()["services"]
    assert services["minio"]["image"].startswith("minio/minio:RELEASE.")
    assert services["minio-setup"]["image"].startswith("minio/mc:RELEASE.")
    assert services["minio-setup"]["restart"] == "no"  # one-shot
    mlflow = shell_of(services["mlflow"]["command"])
    assert "exec mlflow server " in mlflow
    assert "--backend-store-uri sqlite:////mlflow/mlflow.db" in mlflow
    for name in RAY_NODES:  # every node reaches the bucket and the tracking server
        env = services[name]["environment"]
        assert env["AWS_ENDPOINT_URL"] == "http://minio:9000"
        assert env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert '".[tracking,jobs]"' in (DOCKER / "Dockerfile").read_text()  # mlflow, the job server


def test_compose_gpu_workers_reserve_gpus_and_the_cpu_worker_is_marked():
    services = compose()["services"]
    devices = services["gpu-worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and devices[0]["capabilities"] == ["gpu"]
    assert '"svm_worker": 8' in services["cpu-worker"]["command"]


def test_env_files_are_uncommitted_and_every_example_is_read():
    examples = sorted(p.name.removesuffix(".example") for p in DOCKER.glob("*.env.example"))
    assert examples == ["minio-root.env", "mlflow.env", "ray.env", "storage.env"]
    read = {f for service in compose()["services"].values() for f in env_files(service)}
    assert read == set(examples)
    assert "*.env" in (DOCKER / ".gitignore").read_text().splitlines()
    assert "RAY_AUTH_MODE=token" in (DOCKER / "ray.env.example").read_text()


# --- secrets: every one checked at start-up, no placeholder accepted ---


def test_every_service_that_reads_an_env_file_checks_all_its_variables():
    services = compose()["services"]
    guarded = 0
    for name, service in services.items():
        files = env_files(service)
        if not files:
            continue
        wanted = {key for f in files for key in example(f)}
        assert wanted <= set(checked_variables(service)), name
        guarded += 1
    assert guarded == 6  # the three Ray nodes, minio, minio-setup, mlflow
    # the third-party images get the script mounted; the tune-mnist image carries it
    for name in ("minio", "minio-setup"):
        assert "./check-secrets.sh:/usr/local/bin/check-secrets:ro" in services[name]["volumes"]
    assert (
        "COPY docker/check-secrets.sh /usr/local/bin/check-secrets"
        in (DOCKER / "Dockerfile").read_text()
    )


def test_examples_ship_placeholders_not_secrets():
    for path in DOCKER.glob("*.env.example"):
        for key, value in env_file(path).items():
            if re.search("PASSWORD|SECRET|TOKEN", key):
                assert value.startswith("replace-me"), (path.name, key)


def run_check(shell: str, variables: dict[str, str], names: list[str], *command: str):
    return subprocess.run(
        [shell, str(CHECK_SECRETS), *names, "--", *command],
        env={"PATH": os.environ["PATH"], **variables},
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize("shell", SHELLS)
def test_check_secrets_refuses_a_placeholder_in_one_line(shell, tmp_path):
    env = tmp_path / "ray.env"
    env.write_text("# a comment\nRAY_AUTH_MODE=token\nRAY_AUTH_TOKEN=replace-me-with-a-token\n")
    run = run_check(shell, env_file(env), ["RAY_AUTH_MODE", "RAY_AUTH_TOKEN"], "echo", "ran")
    assert run.returncode == 1 and run.stdout == ""  # the command never ran
    assert len(run.stderr.splitlines()) == 1
    assert "RAY_AUTH_TOKEN" in run.stderr and "placeholder" in run.stderr
    assert "replace-me-with-a-token" not in run.stderr  # names the variable, not its value


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("value", ["", '"REPLACE-ME-quoted"'])
def test_check_secrets_refuses_empty_and_disguised_placeholders(shell, value, tmp_path):
    env = tmp_path / "mlflow.env"
    env.write_text(f"MLFLOW_TRACKING_USERNAME=tune-mnist\nMLFLOW_TRACKING_PASSWORD={value}\n")
    names = ["MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"]
    run = run_check(shell, env_file(env), names, "echo", "ran")
    assert run.returncode == 1 and run.stdout == ""
    assert len(run.stderr.splitlines()) == 1 and "MLFLOW_TRACKING_PASSWORD" in run.stderr
    unset = run_check(shell, {}, ["MLFLOW_TRACKING_PASSWORD"], "echo", "ran")
    assert unset.returncode == 1 and "MLFLOW_TRACKING_PASSWORD is empty" in unset.stderr


@pytest.mark.parametrize("shell", SHELLS)
def test_check_secrets_runs_the_command_with_real_values(shell, tmp_path):
    env = tmp_path / "storage.env"
    env.write_text("AWS_ACCESS_KEY_ID=tune-mnist-nodes\nAWS_SECRET_ACCESS_KEY=9f8e7d6c5b4a\n")
    names = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]
    run = run_check(shell, env_file(env), names, "sh", "-c", 'echo "ran $1"', "sh", "x y")
    assert (run.returncode, run.stdout, run.stderr) == (0, "ran x y\n", "")


@pytest.mark.parametrize("shell", SHELLS)
def test_check_secrets_refuses_bad_usage(shell):
    assert run_check(shell, {"A": "x"}, ["A;true"], "true").returncode == 2  # not a name
    no_separator = subprocess.run(
        [shell, str(CHECK_SECRETS), "A"],
        env={"PATH": os.environ["PATH"], "A": "x"},
        capture_output=True,
        timeout=30,
    )
    assert no_separator.returncode == 2


@pytest.mark.parametrize("name", ["head", "minio", "minio-setup", "mlflow"])
def test_every_service_refuses_the_examples_as_copied(name):
    service = compose()["services"][name]
    variables = {k: v for f in env_files(service) for k, v in example(f).items()}
    run = run_check("bash", variables, checked_variables(service), "true")
    assert run.returncode == 1 and "placeholder" in run.stderr, name
    run = run_check("bash", real_values(variables), checked_variables(service), "true")
    assert run.returncode == 0, (name, run.stderr)


# --- MinIO: the nodes get a bucket-only user, root stays with MinIO and the setup ---


def test_nodes_never_get_minio_root():
    services = compose()["services"]
    root = set(example("minio-root.env"))
    assert root == {"MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD"}
    for name, service in services.items():
        if "minio-root.env" in env_files(service):
            assert name in ("minio", "minio-setup"), name
    for name in RAY_NODES:
        readable = {k for f in env_files(services[name]) for k in example(f)}
        assert not readable & root, name
        assert not set(services[name]["environment"]) & root, name
    nodes = example("storage.env")
    assert set(nodes) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    assert nodes["AWS_ACCESS_KEY_ID"] != example("minio-root.env")["MINIO_ROOT_USER"]
    # storage.env.example describes both key pairs and where each goes
    text = (DOCKER / "storage.env.example").read_text()
    assert "MINIO_ROOT_USER" in text and "MINIO_ROOT_PASSWORD" in text
    assert "minio-root.env" in text


def test_minio_policy_allows_the_experiments_bucket_only():
    policy = json.loads((DOCKER / "minio-policy.json").read_text())
    actions = set()
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        assert set(statement["Resource"]) <= {
            "arn:aws:s3:::tune-mnist",
            "arn:aws:s3:::tune-mnist/*",
        }
        actions |= set(statement["Action"])
    assert all(a.startswith("s3:") and "*" not in a for a in actions)
    assert {"s3:ListBucket", "s3:GetObject", "s3:PutObject", "s3:DeleteObject"} <= actions
    assert not actions & {"s3:CreateBucket", "s3:DeleteBucket", "s3:PutBucketPolicy"}


def run_minio_setup(tmp_path: Path, variables: dict[str, str]):
    stubs = tmp_path / "bin"
    stubs.mkdir()
    log = tmp_path / "mc.log"
    stub(stubs, "mc", f'echo "$*" >> {log}\n')
    stub(stubs, "sleep", "")
    run = subprocess.run(
        ["sh", str(DOCKER / "minio-setup.sh")],
        env={"PATH": f"{stubs}{os.pathsep}{os.environ['PATH']}", **variables},
        capture_output=True,
        text=True,
        timeout=30,
    )
    return run, log.read_text().splitlines() if log.exists() else []


def test_minio_setup_makes_the_bucket_policy_and_limited_user(tmp_path):
    setup = compose()["services"]["minio-setup"]
    assert setup["entrypoint"][-2:] == ["sh", "/setup/minio-setup.sh"]
    mounts = {volume.split(":")[1]: volume.split(":")[0] for volume in setup["volumes"]}
    for target in ("/setup/minio-setup.sh", "/setup/minio-policy.json"):
        assert (DOCKER / mounts[target]).is_file()
    variables = real_values({**example("minio-root.env"), **example("storage.env")})
    run, calls = run_minio_setup(tmp_path, variables)
    assert run.returncode == 0, run.stderr
    root, password = variables["MINIO_ROOT_USER"], variables["MINIO_ROOT_PASSWORD"]
    user, secret = variables["AWS_ACCESS_KEY_ID"], variables["AWS_SECRET_ACCESS_KEY"]
    assert calls == [
        f"alias set store http://minio:9000 {root} {password}",
        "mb --ignore-existing store/tune-mnist",
        "admin policy create store tune-mnist-bucket /setup/minio-policy.json",
        f"admin user add store {user} {secret}",
        f"admin policy attach store tune-mnist-bucket --user {user}",
    ]


def test_minio_setup_refuses_root_as_the_nodes_user(tmp_path):
    variables = real_values({**example("minio-root.env"), **example("storage.env")})
    variables["AWS_ACCESS_KEY_ID"] = variables["MINIO_ROOT_USER"]
    run, calls = run_minio_setup(tmp_path, variables)
    assert run.returncode == 1 and calls == []
    assert len(run.stderr.splitlines()) == 1 and "MINIO_ROOT_USER" in run.stderr


# --- MLflow behind basic auth ---


def test_mlflow_runs_basic_auth_with_the_admin_from_its_env_file(tmp_path):
    service = compose()["services"]["mlflow"]
    assert env_files(service) == ["mlflow.env"]
    config_path = service["environment"]["MLFLOW_AUTH_CONFIG_PATH"]
    mount = next(v for v in service["volumes"] if v.split(":")[1] == config_path)
    config = configparser.ConfigParser()
    config.read(DOCKER / mount.split(":")[0])
    assert config["mlflow"]["default_permission"] == "NO_PERMISSIONS"
    assert config["mlflow"]["database_uri"].startswith("sqlite:////mlflow/")  # the volume
    assert "admin_password" not in config["mlflow"]  # from mlflow.env only
    assert '"mlflow[auth]"' in (DOCKER / "Dockerfile").read_text()  # Flask-WTF

    # The command, run by the container's shell against a stub mlflow.
    stubs = tmp_path / "bin"
    stubs.mkdir()
    stub(stubs, "mlflow", 'echo "$*"; env | grep ^MLFLOW_ | sort\n')
    (stubs / "python").symlink_to(sys.executable)
    variables = real_values(example("mlflow.env"))
    run = subprocess.run(
        ["sh", "-c", shell_of(service["command"])],
        env={"PATH": f"{stubs}{os.pathsep}{os.environ['PATH']}", **variables},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    args, *env = run.stdout.splitlines()
    assert args.startswith("server --app-name basic-auth --host 0.0.0.0 --port 5000")
    allowed = args.split("--allowed-hosts ")[1].split()[0].split(",")
    assert "mlflow:5000" in allowed  # the nodes' MLFLOW_TRACKING_URI
    env = dict(line.split("=", 1) for line in env)
    assert env["MLFLOW_AUTH_ADMIN_USERNAME"] == variables["MLFLOW_TRACKING_USERNAME"]
    assert env["MLFLOW_AUTH_ADMIN_PASSWORD"] == variables["MLFLOW_TRACKING_PASSWORD"]
    assert re.fullmatch("[0-9a-f]{64}", env["MLFLOW_FLASK_SERVER_SECRET_KEY"])


# --- the Ray dashboard on loopback unless asked ---


def head_command_run(tmp_path: Path, command: list[str], **variables: str) -> str:
    stubs = tmp_path / "bin"
    stubs.mkdir(exist_ok=True)
    stub(stubs, "ray", 'echo "$*"\n')
    run = subprocess.run(
        command,
        env={"PATH": f"{stubs}{os.pathsep}{os.environ['PATH']}", **variables},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert run.returncode == 0, run.stderr
    return run.stdout


@pytest.mark.parametrize("source", ["compose", "Dockerfile"])
def test_the_head_dashboard_binds_loopback_unless_asked(source, tmp_path):
    if source == "compose":
        command = ["sh", "-c", shell_of(compose()["services"]["head"]["command"])]
    else:
        text = (DOCKER / "Dockerfile").read_text()
        cmd = json.loads(re.search(r"^CMD (\[.*?\])$", text, re.M | re.S)[1].replace("\\\n", ""))
        assert cmd[:3] == ["check-secrets", "RAY_AUTH_TOKEN", "--"]  # the guard first
        command = cmd[3:]
    default = head_command_run(tmp_path, command)
    assert "--head" in default and "--dashboard-host=127.0.0.1" in default.split()
    opened = head_command_run(tmp_path, command, RAY_DASHBOARD_HOST="0.0.0.0")
    assert "--dashboard-host=0.0.0.0" in opened.split()
    assert "RAY_DASHBOARD_HOST" in (DOCKER / "ray.env.example").read_text()  # documented


def test_dockerfile_runs_as_a_non_root_user():
    text = (DOCKER / "Dockerfile").read_text()
    assert "\nUSER ray\n" in text and "torch==2.14.1" in text


# --- KubeRay ---


def pod_templates(job: dict) -> dict[str, dict]:
    cluster = job["spec"]["rayClusterSpec"]
    templates = {"head": cluster["headGroupSpec"]["template"]}
    for group in cluster["workerGroupSpecs"]:
        templates[group["groupName"]] = group["template"]
    templates["submitter"] = job["spec"]["submitterPodTemplate"]
    return templates


def test_kuberay_manifest():
    job = kuberay()["RayJob"]
    assert job["apiVersion"] == "ray.io/v1"
    assert job["spec"]["entrypoint"].startswith("tune-mnist sweep q1a")
    groups = {g["groupName"]: g for g in job["spec"]["rayClusterSpec"]["workerGroupSpecs"]}
    gpu_limits = groups["gpu"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert gpu_limits["nvidia.com/gpu"] == "1"
    assert "svm_worker" in groups["svm-cpu"]["rayStartParams"]["resources"]
    for name, template in pod_templates(job).items():  # the token everywhere, from a Secret
        env = template["spec"]["containers"][0]["env"]
        assert {"name": "RAY_AUTH_MODE", "value": "token"} in env, name
        token = next(e for e in env if e["name"] == "RAY_AUTH_TOKEN")
        assert "secretKeyRef" in token["valueFrom"], name


RESTRICTED = {
    "runAsNonRoot": True,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def test_kuberay_every_container_is_restricted():
    for name, template in pod_templates(kuberay()["RayJob"]).items():
        spec = template["spec"]
        # runAsNonRoot needs a numeric user: the image's USER is a name
        assert spec["securityContext"]["runAsUser"] == 1000, name
        assert spec["automountServiceAccountToken"] is False, name
        containers = spec["containers"] + spec.get("initContainers", [])
        for container in containers:
            context = container["securityContext"]
            assert {k: context.get(k) for k in RESTRICTED} == RESTRICTED, (name, container)


def allows(policy: dict, source: dict, port: int) -> bool:
    """Whether a NetworkPolicy's ingress rules let `source` (labels, namespace) reach `port`."""

    def matches(selector: dict, labels: dict) -> bool:
        assert set(selector) <= {"matchLabels"}  # what this evaluator understands
        return selector.get("matchLabels", {}).items() <= labels.items()

    def peer_matches(peer: dict) -> bool:
        assert "ipBlock" not in peer
        if "namespaceSelector" in peer:
            if not matches(peer["namespaceSelector"], source["namespace_labels"]):
                return False
        elif source["namespace"] != "tune":  # no namespaceSelector: the policy's own
            return False
        return matches(peer.get("podSelector", {}), source["labels"])

    for rule in policy["spec"]["ingress"]:
        assert rule.get("from"), "a rule without `from` admits every source"
        ports = [p["port"] for p in rule.get("ports", [])]
        if any(peer_matches(peer) for peer in rule["from"]) and (not ports or port in ports):
            return True
    return False


def test_kuberay_network_policy_admits_only_the_clusters_pods():
    kinds = kuberay()
    policy = kinds["NetworkPolicy"]
    assert policy["apiVersion"] == "networking.k8s.io/v1"
    assert "Ingress" in policy["spec"]["policyTypes"]
    selected = policy["spec"]["podSelector"]["matchLabels"]
    for name, template in pod_templates(kinds["RayJob"]).items():  # it covers every pod
        assert selected.items() <= template["metadata"]["labels"].items(), name

    def pod(labels, namespace="tune"):
        return {
            "labels": labels,
            "namespace": namespace,
            "namespace_labels": {"kubernetes.io/metadata.name": namespace},
        }

    ray_ports = (6379, 8265, 10001, 10002, 19999, 52365)  # GCS, dashboard, client, workers...
    own = pod({**selected, "ray.io/node-type": "worker"})
    stranger = pod({"app": "web"})
    elsewhere = pod(selected, namespace="other")  # the label alone, from another namespace
    operator = pod({"app.kubernetes.io/component": "kuberay-operator"}, "ray-system")
    for port in ray_ports:
        assert allows(policy, own, port), port
        assert not allows(policy, stranger, port), port
        assert not allows(policy, elsewhere, port), port
    # The operator polls the job's status on the dashboard, and only there.
    assert [p for p in ray_ports if allows(policy, operator, p)] == [8265]
    assert not allows(policy, pod(operator["labels"], "tune"), 8265)


# --- compose itself ---


@pytest.mark.skipif(
    not shutil.which("docker-compose"), reason="Debian's docker-compose not installed"
)
def test_docker_compose_config_validates(tmp_path):
    folder = Path(shutil.copytree(DOCKER, tmp_path / "docker"))
    for path in folder.glob("*.env.example"):
        shutil.copy(path, folder / path.name.removesuffix(".example"))
    run = subprocess.run(
        ["docker-compose", "-f", str(folder / "docker-compose.yml"), "config"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    for word in ("svm_worker", "minio-setup", "basic-auth", "check-secrets"):
        assert word in run.stdout, word
