"""Real servers on loopback for the tests: an S3 API (moto's standalone server) and MLflow.

Each runs in its own process group, started and stopped (os.killpg) by the test fixture.
moto: it installs from PyPI (no Docker, no Java), speaks the S3 REST API that pyarrow's
AWS SDK client talks to, and with INITIAL_NO_AUTH_ACTION_COUNT it checks access keys and
request signatures against its own IAM users, so wrong credentials are refused for real.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

BIN = Path(sys.executable).parent
BUCKET = "bucket"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port: int, process: subprocess.Popen, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        with contextlib.suppress(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


@contextlib.contextmanager
def process_group(
    command: list[str], port: int, timeout_s: float = 60, **kwargs
) -> Iterator[subprocess.Popen]:
    """A server in its own process group, listening on `port` before this yields."""
    process = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        **kwargs,
    )
    try:
        wait_listening(port, process, timeout_s)
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


@dataclass(frozen=True)
class S3:
    """A running S3 server with one bucket and one IAM user allowed everything."""

    endpoint: str
    key_id: str
    secret: str

    def env(self, **changes: str) -> dict[str, str]:
        """The environment variables a client of this server reads."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret,
            "AWS_DEFAULT_REGION": "us-east-1",
            **changes,
        }

    def client(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=self.key_id,
            aws_secret_access_key=self.secret,
        )

    def keys(self, prefix: str = "") -> list[str]:
        """Every object key under `prefix` in the bucket."""
        pages = (
            self.client().get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
        )
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))

    def read(self, key: str) -> bytes:
        return self.client().get_object(Bucket=BUCKET, Key=key)["Body"].read()


@contextlib.contextmanager
def s3_server() -> Iterator[S3]:
    """moto's server with IAM authentication on after its first 4 requests, which make the
    user, its key, its policy and the bucket."""
    import boto3

    port = free_port()
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "4"}
    command = [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)]
    with process_group(command, port, env=env):
        endpoint = f"http://127.0.0.1:{port}"
        anyone = dict(
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="setup",
            aws_secret_access_key="setup",
        )
        iam = boto3.client("iam", **anyone)
        iam.create_user(UserName="sweeper")
        key = iam.create_access_key(UserName="sweeper")["AccessKey"]
        everything = {"Effect": "Allow", "Action": "*", "Resource": "*"}
        iam.put_user_policy(
            UserName="sweeper",
            PolicyName="all",
            PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [everything]}),
        )
        boto3.client("s3", **anyone).create_bucket(Bucket=BUCKET)
        yield S3(endpoint, key["AccessKeyId"], key["SecretAccessKey"])


@contextlib.contextmanager
def mlflow_server(folder: Path) -> Iterator[str]:
    """`mlflow server` on loopback with a SQLite backend and artifacts proxied into
    `folder`; yields its tracking URI once it answers (10-20 s to start on an idle machine)."""
    import urllib.request

    port = free_port()
    command = [
        str(BIN / "mlflow"),
        "server",
        "--backend-store-uri",
        f"sqlite:///{folder / 'mlflow.db'}",
        "--artifacts-destination",
        str(folder / "artifacts"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    # minutes, not seconds, on a busy machine: it imports much of MLflow before it listens
    with process_group(command, port, timeout_s=300, cwd=folder) as process:
        uri = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:  # the port opens before the app is ready to answer
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=5) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("mlflow server did not start")
            time.sleep(0.5)
        yield uri


def tensorboard_scalar_tags(data: bytes) -> set[str]:
    """The scalar tags in a TensorBoard event file: TFRecord framing (length, its CRC,
    the record, its CRC) around Event protos, read with tensorboardX's own proto."""
    import struct

    from tensorboardX.proto.event_pb2 import Event

    tags, offset = set(), 0
    while offset < len(data):
        (length,) = struct.unpack_from("<Q", data, offset)
        record = data[offset + 12 : offset + 12 + length]
        offset += 12 + length + 4
        tags |= {value.tag for value in Event.FromString(record).summary.value}
    return tags
