"""A Triton client that behaves like the Inspector.

`RemoteInspector("grpc://host:8001")` is called like an `Inspector`, on a
list of BGR uint8 frames, and returns one Inspection per frame, so the
stream runner and `infer` use a server without knowing it. Frames of one
size go out in one request (up to the model's batch limit); frames of
several sizes in one request each, since a request is one array.

When the server goes away (restart, network), a call waits for it with
exponential backoff, reports the outage, and carries on once the model is
ready again; a request the server answers with an error (a bad frame)
raises `CfncError` with the server's message instead.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass

import numpy as np

from cfnc_edge.errors import CfncError
from cfnc_edge.runtime.inspector import Inspection
from cfnc_edge.serve import protocol as p

ERROR_LINE = re.compile(r"^[A-Za-z_.]*(Error|Exception): ")
PROBE = np.zeros((32, 32, 3), np.uint8)  # asks the model for its threshold and bundle id


@dataclass
class RemoteInspection(Inspection):
    """An Inspection computed by a server; `bundle_id` names the bundle that scored it."""

    bundle_id: str = ""

    def full_map(self) -> np.ndarray:
        if self.map is None:
            raise CfncError("this result has no anomaly map: connect with maps=True to have the server send them")
        return super().full_map()


def grpc_address(server: str) -> str:
    """HOST:PORT from `grpc://HOST:PORT` (or a bare HOST:PORT)."""
    scheme, sep, rest = server.partition("://")
    if not sep:
        scheme, rest = "grpc", server
    if scheme != "grpc" or not rest or ":" not in rest:
        raise CfncError(f"--server {server!r}: give the server's gRPC address as grpc://HOST:PORT "
                        "(`cfnc-edge serve` listens on 8001 by default)")
    return rest.rstrip("/")


class RemoteInspector:
    """Inspect frames on a `cfnc-edge serve` (Triton) server over gRPC.

    `model`: the served model (default: `cfnc`, a bundle served without a name). `maps`:
    also fetch anomaly maps (for heatmaps and saved frames; otherwise only
    scores cross the network). `give_up_after_s`: how long a call waits
    for a server that went away before raising (None: for ever, as live
    streams want; `stop()` ends the wait and the call returns no results).
    `log(msg)` receives outage reports; they are also kept in `outages`.
    """

    def __init__(self, server: str, model: str | None = None, maps: bool = False,
                 connect_timeout_s: float = 30.0, give_up_after_s: float | None = 60.0,
                 backoff_start_s: float = 0.5, backoff_max_s: float = 8.0, request_timeout_s: float = 60.0,
                 log=None):
        try:
            import tritonclient.grpc as grpcclient
        except ImportError:
            raise CfncError("--server needs the Triton client: pip install 'cfnc-edge[serve]'") from None
        self._grpc = grpcclient
        self.server, self.address = server, grpc_address(server)
        self.give_up_after_s, self.request_timeout_s = give_up_after_s, request_timeout_s
        self.backoff = (backoff_start_s, backoff_max_s)
        self._log = log or (lambda msg: None)
        self._stop = threading.Event()
        self.outages: list[str] = []
        self.reconnects = 0
        self._client = grpcclient.InferenceServerClient(self.address)
        self.model = model or p.DEFAULT_MODEL
        # PyTriton starts Triton first and loads the models after, so wait for the model, not the server
        deadline = time.monotonic() + connect_timeout_s
        while not self._model_ready():
            if time.monotonic() > deadline:
                raise self._not_ready(connect_timeout_s)
            time.sleep(0.2)
        self.max_batch = max(1, int(self._client.get_model_config(self.model, as_json=True)["config"]
                                    .get("max_batch_size", 1)))
        self._outputs = [*p.SCALARS, *([p.MAP] if maps else [])]
        self.threshold: float | None = None
        self.bundle_id = ""
        self([PROBE])

    # ---- connecting ----------------------------------------------------
    def _server_ready(self) -> bool:
        try:
            return bool(self._client.is_server_ready())
        except Exception:  # noqa: BLE001 - refused, reset, DNS: all mean "not (yet) there"
            return False

    def _model_ready(self) -> bool:
        try:
            return bool(self._client.is_model_ready(self.model))
        except Exception:  # noqa: BLE001
            return False

    def _not_ready(self, waited_s: float) -> CfncError:
        if not self._server_ready():
            return CfncError(f"no Triton server ready at {self.server} after {waited_s:.0f} s: "
                             "start one with `cfnc-edge serve --bundle PATH` or check the address")
        # PyTriton guards the repository index (it can load and unload models), so the
        # client cannot list the served models: it can only say which one it asked for
        return CfncError(f"{self.server} has no ready model {self.model!r}: give the served name with --model NAME "
                         "(a bundle served as --bundle NAME=PATH is model NAME)")

    def _wait_for_server(self, exc: Exception) -> bool:
        """Back off until the model is ready again (True) or `stop()` is called (False)."""
        msg = f"{self.server}: server unavailable ({_reason(exc)}); retrying with backoff"
        self.outages.append(msg)
        self._log(msg)
        t0, delay = time.monotonic(), self.backoff[0]
        while not self._stop.wait(delay):
            # a fresh channel: gRPC's own reconnect backoff would otherwise add up to minutes
            self._client.close()
            self._client = self._grpc.InferenceServerClient(self.address)
            if self._model_ready():
                self.reconnects += 1
                self._log(f"{self.server}: server back after {time.monotonic() - t0:.1f} s")
                return True
            if self.give_up_after_s is not None and time.monotonic() - t0 > self.give_up_after_s:
                raise CfncError(f"{self.server} has been unavailable for {time.monotonic() - t0:.0f} s: "
                                "is `cfnc-edge serve` running there?")
            delay = min(2 * delay, self.backoff[1])
        return False

    # ---- inspecting ----------------------------------------------------
    def _infer(self, batch: np.ndarray) -> list[RemoteInspection] | None:
        g = self._grpc
        inp = g.InferInput(p.FRAMES, list(batch.shape), _triton_dtype(batch.dtype))
        inp.set_data_from_numpy(batch)
        outputs = [g.InferRequestedOutput(name) for name in self._outputs]
        while True:
            try:
                res = self._client.infer(self.model, [inp], outputs=outputs, client_timeout=self.request_timeout_s)
                break
            except Exception as exc:  # noqa: BLE001 - sorted below: refused request or lost server
                if self._model_ready():
                    raise CfncError(f"{self.server} refused the request: {_reason(exc)}") from None
                if not self._wait_for_server(exc):
                    return None
        thresholds = res.as_numpy(p.THRESHOLD)[:, 0]
        ids = [b.decode() for b in res.as_numpy(p.BUNDLE_ID)[:, 0]]
        maps = res.as_numpy(p.MAP) if p.MAP in self._outputs else [None] * len(batch)
        self.threshold = None if np.isnan(thresholds[-1]) else float(thresholds[-1])
        self.bundle_id = ids[-1]
        return [RemoteInspection(float(s), None if np.isnan(t) else float(t), m, batch.shape[1:3], i)
                for s, t, m, i in zip(res.as_numpy(p.SCORE)[:, 0], thresholds, maps, ids)]

    def __call__(self, frames: list[np.ndarray]) -> list[RemoteInspection]:
        """One result per frame, in order; [] if `stop()` ended a wait for the server."""
        by_shape: dict[tuple, list[int]] = {}
        for i, f in enumerate(frames):
            if not np.size(f):
                # the server refuses these too, but with a traceback from PyTriton's internals
                raise CfncError(f"frame {i} is empty (shape {np.shape(f)}): give BGR frames of at least 1x1 pixels")
            by_shape.setdefault((np.shape(f), np.asarray(f).dtype), []).append(i)
        out: list[RemoteInspection | None] = [None] * len(frames)
        for idx in by_shape.values():
            for k in range(0, len(idx), self.max_batch):
                chunk = idx[k:k + self.max_batch]
                results = self._infer(np.stack([frames[i] for i in chunk]))
                if results is None:
                    return []
                for i, r in zip(chunk, results):
                    out[i] = r
        return out

    def stop(self) -> None:
        """End any wait for a lost server (the call in progress returns no results)."""
        self._stop.set()

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> "RemoteInspector":
        return self

    def __exit__(self, *_) -> None:
        self.close()


def _triton_dtype(dtype: np.dtype) -> str:
    from tritonclient.utils import np_to_triton_dtype

    name = np_to_triton_dtype(dtype)
    if name is None:
        raise CfncError(f"frames of dtype {dtype} cannot be sent: give BGR uint8 frames")
    return name


def _reason(exc: Exception) -> str:
    """One line of an error: Triton's message, or where the server sends a
    Python traceback (an error in the model), its last `...Error: ...` line."""
    lines = str(exc.message() if hasattr(exc, "message") else exc).strip().splitlines()
    raised = [ln.strip() for ln in lines if ERROR_LINE.match(ln.strip())]
    return raised[-1] if raised else lines[0] if lines else type(exc).__name__
