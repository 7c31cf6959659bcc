"""Real storage servers on loopback for the tests: moto's S3 (a subprocess), the GCS emulator and a
plain HTTP file server (threads), each counting or holding what the tests need."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import tarfile
import threading
import urllib.request
import zipfile
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from tests.conftest import free_port, wait_until_blocking

if TYPE_CHECKING:
    from gateway.app import Gateway

ROOT = Path(__file__).resolve().parents[2]
IRIS_INPUT = {"instances": [[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]]}  # the KServe quick start's iris-input.json
HOST = "sklearn-iris.kserve-test.example.com"
Start = Callable[..., Awaitable[tuple["Gateway", str]]]  # the `serve` fixture: config text (and -n) in, (gateway, base URL) out


async def predict(base: str, host: str = HOST, model: str = "sklearn-iris") -> httpx.Response:
    """The quick start's `curl -H Host: ... /v1/models/NAME:predict -d @iris-input.json`."""
    async with httpx.AsyncClient(timeout=60) as client:
        return await client.post(f"{base}/v1/models/{model}:predict", json=IRIS_INPUT, headers={"Host": host})


IRIS = ROOT / "config" / "models" / "iris.onnx"
REGION = "us-east-1"
_POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}


@dataclass
class S3Server:
    """moto in server mode; with `auth`, IAM checks are on and only the access key it made is let in.

    (moto's signature check miscomputes list requests whose prefix holds a slash: with IAM checks on,
    use single-segment prefixes.)"""

    endpoint: str
    access_key: str
    secret_key: str
    proc: subprocess.Popen[bytes]

    def env(self, **changes: str) -> dict[str, str]:
        """The variables KServe's storage initializer reads, pointing at this server."""
        env = {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_REGION": REGION,
        }
        env.update(changes)
        return {name: value for name, value in env.items() if value}

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
        )

    def put(self, bucket: str, objects: Mapping[str, bytes], acl: str = "private") -> None:
        client = self.client()
        client.create_bucket(Bucket=bucket)
        for key, data in objects.items():
            client.put_object(Bucket=bucket, Key=key, Body=data, ACL=acl)

    def gets(self) -> int:
        """How many GetObject requests the server has answered (from its request log)."""
        return sum(1 for line in Path(self.log).read_text().splitlines() if '"GET /' in line and "list-type" not in line)

    @property
    def log(self) -> str:
        return str(self.proc.args[-1]) if isinstance(self.proc.args, list) else ""


def start_s3(log_dir: Path, *, auth: bool = False) -> S3Server:
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    log = log_dir / "moto.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=out)
    proc.args = [*proc.args, str(log)]  # type: ignore[misc]  # where gets() reads the request log

    def up() -> bool:
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1).close()
            return True
        except OSError:
            return False

    try:
        wait_until_blocking(up, "moto_server", within=30)
        return _with_a_user(endpoint, proc, auth)
    except BaseException:
        proc.kill()
        proc.wait()
        raise


def _with_a_user(endpoint: str, proc: subprocess.Popen[bytes], auth: bool) -> S3Server:
    """With `auth`, make an IAM user allowed everything on S3, then turn moto's IAM checks on, from request 0.

    Without, any key is let in: moto checks the signatures of keys it knows even then (wrongly, for
    prefixes with a slash), so no user is made."""
    import boto3

    if not auth:
        return S3Server(endpoint, "AKIATESTING", "testing", proc)

    iam = boto3.client("iam", endpoint_url=endpoint, region_name=REGION, aws_access_key_id="setup", aws_secret_access_key="setup")
    iam.create_user(UserName="models")
    iam.put_user_policy(UserName="models", PolicyName="s3", PolicyDocument=json.dumps(_POLICY))
    key = iam.create_access_key(UserName="models")["AccessKey"]
    request = urllib.request.Request(
        f"{endpoint}/moto-api/reset-auth", data=b"0", method="POST", headers={"Content-Type": "text/plain"}
    )
    urllib.request.urlopen(request, timeout=5).close()
    return S3Server(endpoint, key["AccessKeyId"], key["SecretAccessKey"], proc)


@dataclass
class GcsServer:
    host: str
    server: Any

    def env(self) -> dict[str, str]:
        return {"STORAGE_EMULATOR_HOST": f"http://{self.host}"}

    def put(self, bucket: str, objects: Mapping[str, bytes]) -> None:
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        client = storage.Client(
            project="test",
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]  # google-auth leaves it unannotated
            client_options={"api_endpoint": f"http://{self.host}"},
        )
        found = client.bucket(bucket)
        if not found.exists():
            found = client.create_bucket(bucket)
        for name, data in objects.items():
            found.blob(name).upload_from_string(data)


def start_gcs() -> GcsServer:
    from gcp_storage_emulator.server import create_server

    port = free_port()
    server = create_server("127.0.0.1", port, in_memory=True)
    server.start()
    return GcsServer(f"127.0.0.1:{port}", server)


@dataclass
class FileServer:
    """Serves `files` (path → bytes) with an ETag; counts the GETs of each path."""

    files: dict[str, bytes] = field(default_factory=dict)
    gets: Counter[str] = field(default_factory=Counter)
    url: str = ""
    head_allowed: bool = True
    head_refusal: int = 405  # what a HEAD gets when not allowed (403: an S3 presigned GET URL)
    stall: set[str] = field(default_factory=set)  # paths whose GET sends half the body, then waits for `release`
    release: threading.Event = field(default_factory=threading.Event)


def serve_files() -> Iterator[FileServer]:
    files = FileServer()

    class Handler(BaseHTTPRequestHandler):
        def _head(self, send_body: bool) -> None:
            data = files.files.get(self.path)
            if data is None:
                self.send_error(404)
                return
            if send_body:
                files.gets[self.path] += 1
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()[:16]}"')
            self.end_headers()
            if send_body and self.path in files.stall:
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                files.release.wait(30)
                return
            if send_body:
                self.wfile.write(data)

        def do_GET(self) -> None:
            self._head(True)

        def do_HEAD(self) -> None:
            if not files.head_allowed:
                self.send_error(files.head_refusal)
                return
            self._head(False)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    files.url = f"http://127.0.0.1:{server.server_address[1]}"
    # shutdown() waits for the next poll: 50 ms rather than the default half second per test
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield files
    finally:
        files.release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


def zip_bytes(members: Mapping[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def tar_bytes(members: Mapping[str, bytes], *, links: Mapping[str, str] | None = None, mode: str = "w:gz") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:  # type: ignore[call-overload]
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tf.addfile(info)
    return buf.getvalue()


def cache_entries(cache: Path) -> list[str]:
    """What the cache holds, locks aside: complete entries and partial ones."""
    return sorted(p.name for p in cache.iterdir() if not p.name.endswith(".lock")) if cache.exists() else []


def no_partials(cache: Path) -> bool:
    return not any(name.startswith(".partial-") for name in cache_entries(cache))
