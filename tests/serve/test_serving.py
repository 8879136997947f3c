"""`cfnc-edge serve`: a real Triton Inference Server (through PyTriton) on free ports.

The server runs as `python -m cfnc_edge serve` in a child process, exactly as
a user starts it; the tiny 64 px bundle keeps every inference short.
"""

import json
import shutil
import signal
import subprocess
import sys
import threading
import time

import cv2
import numpy as np
import pytest

from cfnc_edge.bundle import MANIFEST, Bundle, sha256
from cfnc_edge.errors import CfncError
from cfnc_edge.runtime.inspector import Inspector
from cfnc_edge.serve.server import pytriton_problem
from tests.synthetic_frames import synthetic_frames

PROBLEM = pytriton_problem()
pytestmark = pytest.mark.skipif(PROBLEM is not None, reason=f"serve tests need a Triton server: {PROBLEM}")

QUEUE_DELAY_MS = 20  # long enough that concurrent clients' requests meet in one batch
MAX_SIDE = 512


@pytest.fixture(scope="session")
def other_bundle(tiny_bundle, tmp_path_factory):
    """A second product: the tiny bundle with another threshold, hence another manifest and id."""
    dest = tmp_path_factory.mktemp("other") / "b"
    shutil.copytree(tiny_bundle.path, dest)
    b = Bundle.open(dest)
    b.manifest["threshold"]["value"] = 2 * b.threshold
    b.write_manifest()
    return Bundle.open(dest)


def server_process(tmp_path_factory, bundles, *args):
    from cfnc_edge.serve.launch import ServerProcess

    log = tmp_path_factory.mktemp("serve") / "server.log"
    return ServerProcess(bundles, "--backend", "torch", "--max-batch", "8",
                         "--queue-delay-ms", str(QUEUE_DELAY_MS), "--max-side", str(MAX_SIDE), *args, log=log)


@pytest.fixture(scope="session")
def server(tiny_bundle, other_bundle, tmp_path_factory):
    srv = server_process(tmp_path_factory, {"tiny": tiny_bundle.path, "other": other_bundle.path}).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def local(tiny_bundle):
    return Inspector(tiny_bundle, "torch")


def raw_infer(srv, model, array):
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import np_to_triton_dtype

    client = grpcclient.InferenceServerClient(f"127.0.0.1:{srv.grpc_port}")
    inp = grpcclient.InferInput("frames", list(array.shape), np_to_triton_dtype(array.dtype))
    inp.set_data_from_numpy(array)
    try:
        return client.infer(model, [inp])
    finally:
        client.close()


def settled_metrics(srv, model, quiet_s=0.5, timeout_s=10.0):
    """The model's metrics once its counters stop moving (nothing may be in flight): two reads
    `quiet_s` apart that agree."""
    keys = ("nv_inference_count", "nv_inference_exec_count")
    last, deadline = srv.metrics(model), time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        time.sleep(quiet_s)
        now = srv.metrics(model)
        if all(now.get(k) == last.get(k) for k in keys):
            return now
        last = now
    return last


def test_scores_equal_local_inspector(server, local, tiny_bundle, other_bundle):
    from cfnc_edge.api import connect

    # two frame sizes: the client sends one request per size, so compare with the same batches locally
    noise = np.random.default_rng(0).integers(0, 256, (96, 96, 3), dtype=np.uint8)  # surely anomalous
    square = synthetic_frames(5, seed=1) + [noise]
    wide = [cv2.resize(f, (120, 80)) for f in synthetic_frames(2, seed=2)]
    with connect(server.url, "tiny", maps=True) as client:
        assert client.bundle_id == sha256(tiny_bundle.path / MANIFEST)
        assert client.threshold == pytest.approx(tiny_bundle.threshold)
        got = client(square + wide)
    want = local(square) + local(wide)
    assert len(got) == len(want) == 8
    for g, w in zip(got, want):
        assert abs(g.score - w.score) <= 1e-5
        assert abs(g.normalized_score - w.normalized_score) <= 1e-5
        assert g.anomalous == w.anomalous and g.threshold == pytest.approx(w.threshold)
        np.testing.assert_allclose(g.map, w.map, atol=1e-5)
        assert g.full_map().shape == w.full_map().shape
        assert g.bundle_id == sha256(tiny_bundle.path / MANIFEST)
    assert any(w.anomalous for w in want) and not all(w.anomalous for w in want)  # both verdicts exercised
    # the other model answers with its own bundle: same features, its own threshold and id
    with connect(server.url, "other") as client:
        other = client(square)
        assert [r.bundle_id for r in other] == [sha256(other_bundle.path / MANIFEST)] * 6
        assert [r.threshold for r in other] == [pytest.approx(other_bundle.threshold)] * 6
        with pytest.raises(CfncError, match="connect with maps=True"):
            other[0].full_map()


def test_concurrent_clients_get_their_own_results_in_batches(server, local):
    from cfnc_edge.api import connect

    n_clients, n_requests = 8, 6
    mine = {k: synthetic_frames(n_requests, seed=100 + k) for k in range(n_clients)}
    got, errors = {}, []
    clients = {k: connect(server.url, "tiny") for k in range(n_clients)}
    # after the clients' connection probes (connect() infers one PROBE frame each), and after Triton
    # has recorded them: it records a request on release, which can follow the response (see below),
    # and a probe counted only after this read would count as one of the 48 frames
    before = settled_metrics(server, "tiny")
    barrier = threading.Barrier(n_clients)

    def run(k):
        try:
            barrier.wait()
            got[k] = [clients[k]([f])[0].score for f in mine[k]]
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(n_clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    # Triton records a request's statistics when it releases the request, which may be just after
    # the client has its response: read the counters until they settle (CI once read 43 of 48)
    deadline, after = time.monotonic() + 10, server.metrics("tiny")
    while after["nv_inference_count"] - before["nv_inference_count"] < n_clients * n_requests \
            and time.monotonic() < deadline:
        time.sleep(0.1)
        after = server.metrics("tiny")
    for k in range(n_clients):
        want = [r.score for f in mine[k] for r in local([f])]
        # batched with other clients' frames (batches of 1-8) against batch 1: PyTorch's CPU
        # convolutions sum in another order per batch size, which moved a map by 1.13e-5 relative
        # in the tiling test (batch 3 against 1, fresh-clone CI seed 9992): 1e-4, as there
        np.testing.assert_allclose(got[k], want, rtol=1e-4)
    frames_served, executions = (after[k] - before[k] for k in ("nv_inference_count", "nv_inference_exec_count"))
    assert frames_served == n_clients * n_requests
    assert executions < frames_served / 2, f"{frames_served} frames in {executions} executions: hardly batched"


@pytest.mark.parametrize("case", ["dtype", "rank", "channels", "zero", "too_large", "batch", "unknown_model"])
def test_bad_requests_get_errors_and_server_keeps_serving(server, local, case):
    from tritonclient.utils import InferenceServerException

    good = synthetic_frames(1, seed=7)[0]
    bad = {"dtype": ("tiny", good[None].astype(np.float32)),
           "rank": ("tiny", good[None, :, :, 0]),
           "channels": ("tiny", np.zeros((1, 8, 8, 4), np.uint8)),
           "zero": ("tiny", np.zeros((1, 0, 8, 3), np.uint8)),
           "too_large": ("tiny", np.zeros((1, MAX_SIDE + 1, 8, 3), np.uint8)),
           "batch": ("tiny", np.repeat(good[None], 9, axis=0)),
           "unknown_model": ("nope", good[None])}[case]
    with pytest.raises(InferenceServerException) as err:
        raw_infer(server, *bad)
    assert err.value.message()
    res = raw_infer(server, "tiny", good[None])
    assert abs(res.as_numpy("score")[0, 0] - local([good])[0].score) <= 1e-5


def test_client_reports_refused_requests(server):
    from cfnc_edge.api import connect

    with connect(server.url, "tiny") as client:
        with pytest.raises(CfncError, match=f"limit of {MAX_SIDE} pixels"):
            client([np.zeros((MAX_SIDE + 1, 8, 3), np.uint8)])
        with pytest.raises(CfncError, match="expects 'UINT8'"):
            client([np.zeros((8, 8, 3), np.float32)])
        with pytest.raises(CfncError, match="empty"):
            client([np.zeros((0, 8, 3), np.uint8)])
    with pytest.raises(CfncError, match="no ready model 'nope'"):
        connect(server.url, "nope", connect_timeout_s=1)


def test_stream_client_survives_server_restart(tiny_bundle, tmp_path, tmp_path_factory):
    folder = tmp_path / "line"
    folder.mkdir()
    n = 150
    for i, f in enumerate(synthetic_frames(n, seed=11)):
        cv2.imwrite(str(folder / f"{i:03d}.png"), f)
    out = tmp_path / "lines.jsonl"
    with server_process(tmp_path_factory, {"tiny": tiny_bundle.path}) as srv:
        proc = subprocess.Popen([sys.executable, "-m", "cfnc_edge", "stream", "--server", srv.url, "--model", "tiny",
                                 "--source", str(folder), "--output", str(out), "--max-batch", "2"],
                                stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        # the server's count, not the output file: the client writes its lines buffered
        while srv.metrics("tiny").get("nv_inference_count", 0) < 10 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert srv.restart(down_s=1.0) == 0
        _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["frame"] for line in lines] == list(range(n))  # no frame lost in the outage
    summary = json.loads(err.split("summary: ")[-1])
    assert summary["frames"] == n
    assert summary["reconnects"] >= 1
    assert any("server unavailable" in o for o in summary["outages"])
    assert "server back after" in err


def test_sigterm_drains_and_stops(tiny_bundle, tmp_path_factory):
    from cfnc_edge.api import connect

    # a long queue delay holds a lone request in Triton's queue: it is surely in flight at the signal
    srv = server_process(tmp_path_factory, {"tiny": tiny_bundle.path}, "--queue-delay-ms", "8000").start()
    try:
        client = connect(srv.url, "tiny", give_up_after_s=0)
        result = {}
        worker = threading.Thread(target=lambda: result.__setitem__("r", client(synthetic_frames(1, seed=5))))
        worker.start()
        deadline = time.monotonic() + 30
        while srv.metrics("tiny")["nv_inference_pending_request_count"] == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert worker.is_alive(), "the request was answered before the signal: the queue delay did not hold it"
        srv.proc.send_signal(signal.SIGTERM)
        worker.join(60)
        assert len(result["r"]) == 1  # the request in flight when the signal came was answered
        assert srv.proc.wait(60) == 0
        log = srv.log.read_text()
        assert log.index("warmed up") < log.index("serving tiny")  # warm before Triton (and readiness) starts
        assert "server stopped" in log and "Traceback" not in log
    finally:
        srv.stop()  # a no-op after a clean exit; never leaves a server behind on failure
    with pytest.raises(CfncError, match="no Triton server ready"):
        connect(srv.url, "tiny", connect_timeout_s=1)
