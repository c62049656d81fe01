"""An HTTP proxy between the app and Azurite that can be slow, answer errors, or drop responses."""

from __future__ import annotations

import http.client
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Faults:
    """What the proxy does to the next requests; change it while the test runs."""

    delay_seconds: float = 0.0
    error_status: int | None = None  # answer this instead of forwarding
    drop_after_forwarding: bool = False  # forward, then close the connection without the answer
    drop_without_forwarding: bool = False  # close the connection; storage never sees the request
    only_request_number: int | None = None  # apply the fault to this request (1-based) only
    from_request_number: int = 1  # or to this request and every later one
    only_containing: bytes | None = None  # only requests whose path or body contain this (counted alone)
    seen: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_request_faulty(self, path: str, body: bytes) -> bool:
        if self.only_containing is not None and self.only_containing not in path.encode() + body:
            return False
        with self.lock:
            self.seen += 1
            if self.only_request_number is not None:
                return self.seen == self.only_request_number
            return self.seen >= self.from_request_number

    def reset(self) -> None:
        with self.lock:
            self.delay_seconds, self.error_status, self.drop_after_forwarding = 0.0, None, False
            self.drop_without_forwarding = False
            self.only_request_number, self.from_request_number, self.seen = None, 1, 0
            self.only_containing = None


class FaultProxy:
    """Listens on a free loopback port and forwards to Azurite's Table service."""

    def __init__(self, target_port: int) -> None:
        self.faults = Faults()
        faults, target = self.faults, target_port

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def __getattr__(self, name: str) -> Any:
                if name.startswith("do_"):
                    return self.forward
                raise AttributeError(name)

            def forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                faulty = faults.next_request_faulty(self.path, body)
                if faulty and faults.delay_seconds:
                    time.sleep(faults.delay_seconds)
                if faulty and faults.drop_without_forwarding:
                    self.close_connection = True
                    self.connection.close()
                    return
                if faulty and faults.error_status:
                    payload = b'{"odata.error":{"code":"ServerBusy","message":{"value":"injected"}}}'
                    self.send_response(faults.error_status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                upstream = http.client.HTTPConnection("127.0.0.1", target, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
                upstream.request(self.command, self.path, body=body, headers=headers)
                response = upstream.getresponse()
                payload = response.read()
                upstream.close()
                if faulty and faults.drop_after_forwarding:
                    self.close_connection = True
                    self.connection.close()
                    return
                self.send_response(response.status)
                for name, value in response.getheaders():
                    if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                """No access log."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port: int = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
