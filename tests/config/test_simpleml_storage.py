"""SimpleMLService `spec.storage.s3`: downloaded before the server starts; its secret read from GatewayConfig
`spec.secretsFile` under the local backend (issue 12 item 3)."""

from __future__ import annotations

import base64
import sys
from pathlib import Path

import pytest

from gateway.config import load
from tests.config.support import one_service, problems, write

LABEL = "document 1 (SimpleMLService/mnist)"


def simpleml(storage: str, command: str = '["python", "serve.py", "{port}"]') -> str:
    return f"""\
apiVersion: tensorstack.dev/v1beta1
kind: SimpleMLService
metadata: {{name: mnist}}
spec:
  storage:
    s3:
{storage}
  custom:
    spec:
      containers:
      - name: user-container
        image: serve:1
        command: {command}
"""


S3 = "      secretName: s3-secret\n      uri: s3://models/mnist/\n      containerPath: /var/lib/t9k/model\n"
S3CFG = "host_base = minio:9000\nuse_https = False\naccess_key = user\nsecret_key = password\n"
SECRETS = f"""\
apiVersion: v1
kind: Secret
metadata: {{name: s3-secret, labels: {{tensorstack.dev/resource: s3}}}}
data:
  .s3cfg: {base64.b64encode(S3CFG.encode()).decode()}
---
apiVersion: v1
kind: Secret
metadata: {{name: kserve-style}}
stringData: {{AWS_ACCESS_KEY_ID: a, AWS_SECRET_ACCESS_KEY: b}}
"""


def gateway(tmp_path: Path, secrets: str | None = SECRETS) -> str:
    if secrets is not None:
        write(tmp_path, "secrets.yaml", secrets)
    return write(tmp_path, "gw.yaml", "apiVersion: serving-gateway/v1\nkind: GatewayConfig\nspec:\n  secretsFile: secrets.yaml\n")


def test_the_command_runs_after_the_download_with_the_secret(tmp_path: Path) -> None:
    config = load([gateway(tmp_path), write(tmp_path, "x.yaml", simpleml(S3))])
    default = one_service(config, "mnist").default
    fetch = (sys.executable, "-m", "gateway", "storage-initializer", "--secret", "s3-secret", "s3://models/mnist/", "-", "--")
    assert default.command == (*fetch, "python", "serve.py", "{port}")
    assert ("SERVING_GATEWAY_SECRETS_FILE", str(tmp_path / "secrets.yaml")) in default.env
    assert (default.storage_uri, default.storage_secret, default.storage_path) == (
        "s3://models/mnist/",
        "s3-secret",
        "/var/lib/t9k/model",
    )
    assert config.warnings == ()


def test_a_shell_command_is_run_by_a_shell_after_the_download(tmp_path: Path) -> None:
    text = simpleml("      uri: s3://models/mnist\n", command="[/bin/sh, -c, 'serve $MODEL_PATH {port}']")
    default = one_service(load([write(tmp_path, "x.yaml", text)]), "mnist").default
    assert default.command is not None and default.command[-4:] == ("--", "/bin/sh", "-c", "serve $MODEL_PATH {port}")
    assert default.storage_secret is None and "--secret" not in default.command


def test_without_a_secrets_file_the_gateways_environment_is_used(tmp_path: Path) -> None:
    path = write(tmp_path, "x.yaml", simpleml(S3))
    config = load([path])
    assert config.warnings == (
        f"{path}: {LABEL}: spec.storage.s3.secretName: secret 's3-secret' is not read: GatewayConfig spec.secretsFile "
        "is not set, so the local backend downloads with the gateway's own environment (AWS_ACCESS_KEY_ID, S3_ENDPOINT, ...)",
    )


@pytest.mark.parametrize(
    ("storage", "secrets", "message"),
    [
        (
            S3.replace("s3-secret", "other"),
            SECRETS,
            "spec.storage.s3.secretName: no Secret 'other' in {dir}/secrets.yaml (GatewayConfig spec.secretsFile)",
        ),
        (
            S3,
            None,
            "spec.storage.s3.secretName: secret 's3-secret': cannot read secrets file {dir}/secrets.yaml: [Errno 2] No such file or directory: '{dir}/secrets.yaml'",
        ),
        (S3, "kind: Secret\nmetadata: {name: s3-secret}\ndata: {.s3cfg: '***'}\n", "is not base64 of UTF-8 text"),
        (S3, "kind: Secret\nmetadata: {}\n", "document 1: a Secret needs metadata.name"),
        (
            S3.replace("s3://models/mnist/", "gs://models/mnist"),
            SECRETS,
            "spec.storage.s3.uri: must be an s3:// URI, got 'gs://models/mnist'",
        ),
        (
            S3.replace("s3://models/mnist/", "https://alice:hunter2@h/m.tgz?X-Amz-Signature=beef"),
            SECRETS,
            "spec.storage.s3.uri: must be an s3:// URI, got 'https://***@h/m.tgz?***'",
        ),
        (
            S3.replace("s3://models/mnist/", "s3://"),
            SECRETS,
            "spec.storage.s3.uri: s3://: expected s3://BUCKET/PREFIX, bucket ''",
        ),
        (
            S3.replace("/var/lib/t9k/model", "model"),
            SECRETS,
            "spec.storage.s3.containerPath: must be an absolute path in the container, got 'model'",
        ),
    ],
)
def test_bad_storage_is_an_error_naming_the_field(tmp_path: Path, storage: str, secrets: str | None, message: str) -> None:
    path = write(tmp_path, "x.yaml", simpleml(storage))
    found = problems([gateway(tmp_path, secrets), path])
    assert len(found) == 1 and found[0].startswith(f"{path}: {LABEL}: spec.storage.s3."), found
    assert message.format(dir=tmp_path) in found[0]
