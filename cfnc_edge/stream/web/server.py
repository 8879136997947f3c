"""Serving the page: `[HOST:]PORT`, the token rule, uvicorn in a thread of its own.

Bound to 127.0.0.1 unless told otherwise. Any other address can be reached
from the network, so it needs a token (`--web-token`, or the environment
variable CFNC_WEB_TOKEN) that every request must carry (app.TokenGuard).
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time

from cfnc_edge.errors import CfncError

TOKEN_ENV = "CFNC_WEB_TOKEN"


def parse_address(text: str | int) -> tuple[str, int]:
    """"PORT" or "HOST:PORT" -> (host, port); the host defaults to 127.0.0.1."""
    host, _, port = str(text).rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise CfncError(f"--web {text}: give PORT or HOST:PORT, e.g. 8080 or 0.0.0.0:8080")
    return host, int(port)


def is_local(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_token(host: str, token: str | None) -> None:
    if not is_local(host) and not token:
        raise CfncError(f"--web {host}: the page would be open to the network; give --web-token TOKEN (or set "
                        f"{TOKEN_ENV}), which every request must then carry, or bind to 127.0.0.1")


class WebServer:
    """uvicorn serving `app` on (host, port) in a daemon thread; port 0 takes a free one (see `.port`)."""

    def __init__(self, app, host: str, port: int):
        import uvicorn

        self.host, self.app = host, app
        try:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            self.sock = socket.socket(family, socket.SOCK_STREAM)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.sock.bind((host, port))
        except OSError as exc:
            self.sock.close()
            raise CfncError(f"--web {host}:{port}: cannot listen there ({exc.strerror or exc}); choose a free port "
                            "or an address of this machine") from exc
        self.port = self.sock.getsockname()[1]
        # no signal handlers (not the main thread), no access log: the stream's status lines are the log
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", ws="websockets-sansio",
                                timeout_graceful_shutdown=2)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True,
                                       name="web")

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def start(self, timeout_s: float = 20.0) -> "WebServer":
        self.thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise CfncError(f"the web page could not be served on {self.url}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()
        self.app.state.workers.shutdown(wait=False)
