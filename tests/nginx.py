"""A real nginx for tests: its own prefix in a temp dir, one worker, loopback only, access log kept."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

from tests.conftest import free_port, wait_until_blocking


def nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if found is None:
        raise RuntimeError("nginx is not installed: run scripts/test.sh, which installs it")
    return found


class Nginx:
    """``servers`` is the text of one or more ``server { ... }`` blocks; ``{port}`` is filled in."""

    def __init__(self, prefix: Path, servers: str) -> None:
        self.prefix = prefix
        self.port = free_port()
        self.access_log = prefix / "access.log"
        user = "user root root;\n" if os.geteuid() == 0 else ""
        temp = "".join(
            f"    {kind}_temp_path {prefix}/{kind};\n" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        (prefix / "nginx.conf").write_text(
            f"{user}worker_processes 1;\npid {prefix}/nginx.pid;\nerror_log {prefix}/error.log warn;\n"
            "events { worker_connections 1024; }\n"
            "http {\n"
            f"    log_format probe '$host $request';\n    access_log {self.access_log} probe;\n{temp}"
            + servers.replace("{port}", str(self.port))
            + "}\n"
        )
        self.proc = subprocess.Popen(
            [nginx_binary(), "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            wait_until_blocking(lambda: self.listening() or self.proc.poll() is not None, "nginx to listen")
        except AssertionError:
            pass
        if not self.listening():
            self.proc.kill()
            err = self.proc.communicate()[1].decode()
            raise RuntimeError(f"nginx did not start: {err}")

    def listening(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), 0.2).close()
        except OSError:
            return False
        return True

    def requests(self) -> list[str]:
        """Access-log lines ``host request-line``; nginx writes each when its response is done."""
        return self.access_log.read_text().splitlines() if self.access_log.exists() else []

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stderr is not None:
            self.proc.stderr.close()
