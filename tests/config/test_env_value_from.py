"""InferenceService env `valueFrom` (KServe's way to give S3 credentials from a Secret): passed on whole to both
containers of the kubernetes Deployment; under the local backend a secretKeyRef is read from GatewayConfig
spec.secretsFile when the replica starts (never kept in the spec), and configMapKeyRef/fieldRef are refused."""

from __future__ import annotations

import asyncio
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from gateway.backends.deployment import build_deployment
from gateway.backends.process import ReplicaProcess
from gateway.config import load
from gateway.rollouts.record import RolloutRecord
from gateway.rollouts.resolve import advance
from tests.config.support import one_service, problems, write

SECRET_VALUE = "wJalrXUtnFEMI-the-secret"
SECRETS = f"""\
apiVersion: v1
kind: Secret
metadata: {{name: s3creds}}
stringData: {{secret: {SECRET_VALUE}}}
"""
REF = {"secretKeyRef": {"name": "s3creds", "key": "secret"}}


def isvc(env: str, backend: str = "local", secrets: bool = True, storage: str = "s3://bkt/model") -> str:
    secrets_file = "\n  secretsFile: secrets.yaml" if secrets else ""
    return f"""\
apiVersion: serving-gateway/v1
kind: GatewayConfig
spec:
  backend: {backend}{secrets_file}
---
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata: {{name: sk, namespace: t}}
spec:
  predictor:
    model:
      modelFormat: {{name: onnx}}
      storageUri: {storage}
      env:
{env}
"""


ENV = """\
        - name: AWS_SECRET_ACCESS_KEY
          valueFrom: {secretKeyRef: {name: s3creds, key: secret}}
        - {name: AWS_ACCESS_KEY_ID, value: AKIA-INLINE}
        - name: POD
          valueFrom: {fieldRef: {fieldPath: metadata.name}}
        - name: REGION
          valueFrom: {configMapKeyRef: {name: s3, key: region, optional: true}}"""


def test_kubernetes_passes_value_from_to_the_served_and_init_containers(tmp_path: Path) -> None:
    config = load([write(tmp_path, "x.yaml", isvc(ENV, backend="kubernetes", secrets=False))])
    assert config.warnings == ()
    service = one_service(config, "sk")
    pod = build_deployment(service, service.default, config.gateway.kubernetes)["spec"]["template"]["spec"]
    wanted = [
        {"name": "AWS_SECRET_ACCESS_KEY", "valueFrom": REF},
        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "REGION", "valueFrom": {"configMapKeyRef": {"name": "s3", "key": "region", "optional": True}}},
    ]
    for container in (pod["initContainers"][-1], pod["containers"][0]):
        env = container["env"]
        assert {"name": "AWS_ACCESS_KEY_ID", "value": "AKIA-INLINE"} in env
        assert [item for item in env if "valueFrom" in item] == wanted, container["name"]


@pytest.mark.e2e
def test_local_reads_a_secret_key_ref_when_the_replica_starts_and_keeps_it_nowhere(tmp_path: Path) -> None:
    write(tmp_path, "secrets.yaml", SECRETS)
    env = "        - name: AWS_SECRET_ACCESS_KEY\n          valueFrom: {secretKeyRef: {name: s3creds, key: secret}}"
    config = load([write(tmp_path, "x.yaml", isvc(env))])
    revision = one_service(config, "sk").default
    assert revision.env_refs == (("AWS_SECRET_ACCESS_KEY", REF),)
    assert SECRET_VALUE not in repr(config)  # the spec, so /admin/services and the logs, never hold it
    assert SECRET_VALUE not in advance(None, revision, None).to_json()  # nor a rollout record
    assert RolloutRecord.from_json(advance(None, revision, None).to_json()).rolled_out_spec == revision

    async def started() -> str:
        out = tmp_path / "env.txt"
        command = (sys.executable, "-c", f"import os; open({str(out)!r}, 'w').write(os.environ['AWS_SECRET_ACCESS_KEY'])")
        replica = await ReplicaProcess.spawn(replace(revision, command=command), 0, tmp_path / "log")
        await asyncio.wait_for(replica.proc.wait(), 30)
        return out.read_text()

    assert asyncio.run(started()) == SECRET_VALUE


@pytest.mark.parametrize(
    ("env", "secrets", "message"),
    [
        (
            "        - name: POD\n          valueFrom: {fieldRef: {fieldPath: metadata.name}}",
            True,
            "spec.predictor.env[POD].valueFrom.fieldRef: not supported under the local backend",
        ),
        (
            "        - name: R\n          valueFrom: {configMapKeyRef: {name: s3, key: region}}",
            True,
            "spec.predictor.env[R].valueFrom.configMapKeyRef: not supported under the local backend",
        ),
        (
            "        - name: S\n          valueFrom: {secretKeyRef: {name: s3creds, key: secret}}",
            False,
            "env[S].valueFrom.secretKeyRef: Secret 's3creds' cannot be read: GatewayConfig spec.secretsFile is not set",
        ),
        (
            "        - name: S\n          valueFrom: {secretKeyRef: {name: s3creds, key: nope}}",
            True,
            "no key 'nope' in Secret 's3creds'",
        ),
        (
            "        - name: S\n          valueFrom: {secretKeyRef: {name: other, key: secret}}",
            True,
            "no key 'secret' in Secret 'other'",
        ),
        (
            "        - name: S\n          valueFrom: {secretKeyRef: {name: s3creds}}",
            True,
            "spec.predictor.model.env[0].valueFrom.secretKeyRef.key: required",
        ),
        (
            "        - name: S\n          valueFrom: {resourceFieldRef: {resource: limits.cpu}}",
            True,
            "spec.predictor.model.env[0].valueFrom: must hold one of secretKeyRef, configMapKeyRef, fieldRef",
        ),
        (
            "        - name: S\n          value: x\n          valueFrom: {secretKeyRef: {name: s3creds, key: secret}}",
            True,
            "give value or valueFrom, not both",
        ),
        (
            "        - name: S\n          valueFrom: {secretKeyRef: {name: s3creds, key: secret, optional: 1}}",
            True,
            "optional: must be true or false",
        ),
    ],
)
def test_bad_or_unsupported_value_from_is_an_error_naming_the_field(
    tmp_path: Path, env: str, secrets: bool, message: str
) -> None:
    write(tmp_path, "secrets.yaml", SECRETS)
    found = problems([write(tmp_path, "x.yaml", isvc(env, secrets=secrets))])
    assert any(message in problem for problem in found), found
    assert not any(SECRET_VALUE in problem for problem in found)
