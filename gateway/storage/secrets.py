"""Credentials from a secret's keys: KServe's AWS_* / S3_* names as they are, or an s3cmd `.s3cfg`.

A SimpleMLService's S3 secret holds `.s3cfg` (access_key, secret_key, host_base, use_https,
bucket_location); it becomes AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, S3_ENDPOINT, S3_USE_HTTPS and
AWS_REGION. Keys of the environment the stores read are passed through; others are left out.
"""

from __future__ import annotations

import configparser
import os
from collections.abc import Mapping

from .errors import StorageError

S3CFG_KEY = ".s3cfg"
PASSED = ("AWS_", "S3_", "GOOGLE_", "STORAGE_EMULATOR_HOST", "awsAnonymousCredential")
_S3CFG = {"access_key": "AWS_ACCESS_KEY_ID", "secret_key": "AWS_SECRET_ACCESS_KEY", "host_base": "S3_ENDPOINT"}


def credentials(data: Mapping[str, str]) -> dict[str, str]:
    """The storage environment a secret's `data` (decoded) gives; StorageError for an unreadable .s3cfg."""
    env = {key: value for key, value in data.items() if key.startswith(PASSED)}
    if S3CFG_KEY in data:
        env.update(parse_s3cfg(data[S3CFG_KEY]))
    return env


def parse_s3cfg(text: str) -> dict[str, str]:
    """The storage environment an s3cmd configuration gives (its first section, usually [default])."""
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    try:
        parser.read_string(text if text.lstrip().startswith("[") else f"[default]\n{text}")
    except configparser.Error as exc:
        raise StorageError(f"cannot read {S3CFG_KEY}: {exc}") from exc
    section = parser[parser.sections()[0]] if parser.sections() else {}
    env = {name: section[key].strip() for key, name in _S3CFG.items() if section.get(key, "").strip()}
    use_https = section.get("use_https", "").strip().lower()
    if use_https:
        env["S3_USE_HTTPS"] = "1" if use_https in ("true", "yes", "1", "on") else "0"
    region = section.get("bucket_location", "").strip()
    if region:
        env["AWS_REGION"] = "us-east-1" if region.upper() == "US" else region
    return env


def read_secret_dir(folder: str) -> dict[str, str]:
    """A secret mounted as a volume (one file per key), as the storage environment it gives."""
    data: dict[str, str] = {}
    try:
        for name in os.listdir(folder):
            path = os.path.join(folder, name)
            if os.path.isfile(path) and not name.startswith(".."):  # ..data and friends: the mount's own links
                with open(path, encoding="utf-8") as handle:
                    data[name] = handle.read().strip() if name != S3CFG_KEY else handle.read()
    except OSError as exc:
        raise StorageError(f"cannot read the secret mounted at {folder}: {exc}") from exc
    return credentials(data)


def read_secrets_file(path: str) -> dict[str, dict[str, str]]:
    """The Secrets a file of Kubernetes `Secret` manifests holds: name → keys (`data` base64-decoded,
    `stringData` as written, winning as the API server has it). Other kinds are skipped."""
    import base64
    import binascii

    import yaml

    try:
        with open(path, encoding="utf-8") as handle:
            documents = list(yaml.safe_load_all(handle))
    except (OSError, yaml.YAMLError) as exc:
        raise StorageError(f"cannot read secrets file {path}: {' '.join(str(exc).split())}") from exc
    found: dict[str, dict[str, str]] = {}
    for index, doc in enumerate(documents, 1):
        if not isinstance(doc, dict) or doc.get("kind") != "Secret":
            continue
        where = f"{path}: document {index}"
        name = (doc.get("metadata") or {}).get("name") if isinstance(doc.get("metadata"), dict) else None
        if not isinstance(name, str) or not name:
            raise StorageError(f"{where}: a Secret needs metadata.name")
        data: dict[str, str] = {}
        for field, decode in (("data", True), ("stringData", False)):
            given = doc.get(field) or {}
            if not isinstance(given, dict):
                raise StorageError(f"{where} (Secret {name}): {field} must be a mapping")
            for key, value in given.items():
                if not isinstance(value, str):
                    raise StorageError(f"{where} (Secret {name}): {field}.{key} must be a string")
                try:
                    data[str(key)] = base64.b64decode(value, validate=True).decode() if decode else value
                except (binascii.Error, UnicodeDecodeError) as exc:
                    raise StorageError(f"{where} (Secret {name}): data.{key} is not base64 of UTF-8 text: {exc}") from exc
        found[name] = data
    return found


def secret_credentials(path: str, name: str) -> dict[str, str]:
    """The storage environment Secret `name` in the secrets file at `path` gives."""
    secrets = read_secrets_file(path)
    if name not in secrets:
        raise StorageError(f"no Secret {name!r} in secrets file {path}")
    return credentials(secrets[name])
