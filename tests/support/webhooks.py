"""A webhook receiver on the loopback interface: it keeps what it receives and answers as a test
tells it (a status or a list of them, a pause, a redirect, an answer that never ends)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Hook:
    """What the receiver got (headers lower-cased, body) and how it answers the next requests."""

    url: str = ""
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    methods: list[str] = field(default_factory=list)  # the HTTP method of each request
    answers: list[int] = field(default_factory=list)  # popped per request; then ``status``
    status: int = 200
    pause: float = 0.0  # seconds before answering
    location: str = ""  # with a 3xx status
    trickle: float = 0.0  # seconds between the bytes of a never-ending answer

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.received]


def serve(state: Hook) -> Iterator[Hook]:
    """Serve ``state`` until the generator is closed (a fixture yields from it)."""

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            state.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
            state.methods.append(self.command)
            if state.trickle:
                self.wfile.write(b"HTTP/1.1 200 OK\r\n")
                for _ in range(120):
                    time.sleep(state.trickle)
                    try:
                        self.wfile.write(b"X")
                        self.wfile.flush()
                    except OSError:
                        return
                return
            if state.pause:
                time.sleep(state.pause)
            self.send_response(state.answers.pop(0) if state.answers else state.status)
            if state.location:
                self.send_header("Location", state.location)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_POST = _answer
        do_GET = _answer

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/activity-export"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
