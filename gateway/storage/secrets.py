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
