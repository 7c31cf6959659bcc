"""A replica for pods of the test bed: stdlib only, HTTP/1.1 keep-alive.

`GET /healthz` answers 200 `ok`; any other path answers 200 with the pod's name (`$POD_NAME`, else
`$HOSTNAME`), so a test sees which pod served it. It listens on `--host` (default 0.0.0.0, which the test
bed's podnet shim turns into the pod's own address) and `--port` (default `$PORT`, else 8080).
"""

from __future__ import annotations

import argparse
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        name = os.environ.get("POD_NAME") or os.environ.get("HOSTNAME", "")
        body = b"ok" if self.path == "/healthz" else name.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")))
    args = parser.parse_args()
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    host, port = server.server_address[:2]
    print(f"listening on {host!s}:{port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
