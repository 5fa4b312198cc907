"""The lab's own small web service: ``GET /health`` answers ``ok``.

Usage: python -m recovery_cli.demo.web_service PORT PIDFILE
It writes its PID to PIDFILE once it listens, so whoever waits for the pidfile can probe."""

from __future__ import annotations

import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"ok\n" if self.path == "/health" else b"not found\n"
        self.send_response(200 if self.path == "/health" else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return  # quiet: the demo narrates


def write_pidfile(path: Path) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(f"{os.getpid()}\n")
    os.replace(temporary, path)


def main() -> None:
    port, pidfile = int(sys.argv[1]), Path(sys.argv[2])
    server = ThreadingHTTPServer(("127.0.0.1", port), Health)
    write_pidfile(pidfile)
    server.serve_forever()


if __name__ == "__main__":
    main()
