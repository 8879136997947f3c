"""`cfnc-edge serve` in a child process: for tests, benchmarks and supervisors."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from cfnc_edge.errors import CfncError
from cfnc_edge.serve.protocol import DEFAULT_MODEL


def free_ports(n: int) -> list[int]:
    """n TCP ports free right now (the OS picks them)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class ServerProcess:
    """A `cfnc-edge serve` child process on free ports.

    `ServerProcess({"name": bundle_path}, "--max-batch", "8", log=path)`;
    `start()` returns once Triton reports every model ready (loaded and warm),
    `stop()` sends SIGTERM and returns the exit code.
    """

    def __init__(self, bundles: dict[str, Path | str], *args: str, log: Path | None = None):
        self.http_port, self.grpc_port, self.metrics_port = free_ports(3)
        self.cmd = [sys.executable, "-m", "cfnc_edge", "serve", *args,
                    *[a for name, path in bundles.items() for a in ("--bundle", f"{name}={path}")],
                    "--http-port", str(self.http_port), "--grpc-port", str(self.grpc_port),
                    "--metrics-port", str(self.metrics_port)]
        self.models, self.log = list(bundles), log
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"grpc://127.0.0.1:{self.grpc_port}"

    def start(self, timeout_s: float = 180.0) -> "ServerProcess":
        import tritonclient.grpc as grpcclient

        out = open(self.log, "ab") if self.log else subprocess.DEVNULL
        self.proc = subprocess.Popen(self.cmd, stdout=out, stderr=subprocess.STDOUT)
        if self.log:
            out.close()  # the child holds its own copy
        client = grpcclient.InferenceServerClient(f"127.0.0.1:{self.grpc_port}")
        deadline = time.monotonic() + timeout_s
        try:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise CfncError(f"`{' '.join(self.cmd)}` exited with {self.proc.returncode} (log: {self.log})")
                try:
                    if all(client.is_model_ready(m) for m in self.models):
                        return self
                except Exception:  # noqa: BLE001 - not listening yet
                    pass
                time.sleep(0.25)
        finally:
            client.close()
        self.stop()
        raise CfncError(f"server not ready after {timeout_s:.0f} s (log: {self.log})")

    def stop(self, timeout_s: float = 60.0) -> int:
        """SIGTERM, then wait for the drain; kill only if it does not end in time."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def metrics(self, model: str = DEFAULT_MODEL) -> dict[str, float]:
        """The model's Prometheus metrics, as a Prometheus server scrapes them: {name: value}."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        text = urllib.request.urlopen(url, timeout=10).read().decode()
        return {m.group(1): float(m.group(2))
                for m in re.finditer(rf'^(\w+){{model="{re.escape(model)}",version="1"}} (\S+)$', text, re.M)}

    def restart(self, down_s: float = 0.0, timeout_s: float = 180.0) -> int:
        """Stop (SIGTERM), stay down `down_s` seconds, start again on the same ports; the stop's exit code."""
        code = self.stop()
        time.sleep(down_s)
        self.start(timeout_s)
        return code

    def __enter__(self) -> "ServerProcess":
        return self.start()

    def __exit__(self, *_) -> None:
        self.stop()
