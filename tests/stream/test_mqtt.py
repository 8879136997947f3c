"""The MQTT sink against a real broker (amqtt, in this process, on a free port)."""

import io
import json

import numpy as np
import pytest
from stream_helpers import Subscriber, synthetic_frames, wait_until

from cfnc_edge.errors import CfncError
from cfnc_edge.runtime.inspector import Inspector
from cfnc_edge.stream.runner import StreamOptions, StreamRunner
from cfnc_edge.stream.sinks import JsonLinesSink
from cfnc_edge.stream.sinks.mqtt import MqttOptions, MqttSink
from cfnc_edge.stream.sources import FolderSource, IterableSource

FAST = (0.05, 0.2)  # reconnect waits for tests


def run(bundle, sources, sinks, threshold=None):
    out = io.StringIO()
    runner = StreamRunner(Inspector(bundle.path, "torch", "fp32", threshold), sources, StreamOptions(),
                          sinks=[JsonLinesSink(stream=out), *sinks])
    summary = runner.run()
    return [json.loads(x) for x in out.getvalue().splitlines()], summary


def test_every_verdict_arrives_with_the_json_line_payload(tiny_bundle, folder, broker):
    url = f"mqtt://127.0.0.1:{broker.port}/line1/verdicts"
    every, status = Subscriber(broker.port, "line1/verdicts"), Subscriber(broker.port, "line1/verdicts/status")
    try:
        lines, summary = run(tiny_bundle, [FolderSource(folder)], [MqttSink(MqttOptions(url, reconnect_s=FAST))])
        wait_until(lambda: len(every.messages) >= len(lines), 10, "all messages")
        assert every.messages == lines and len(lines) == 10
        assert summary["sinks"]["mqtt"] == {"url": url, "messages": 10, "published": 10, "dropped": 0, "unsent": 0}
        wait_until(lambda: status.messages and status.messages[-1]["state"] == "stopped", 10, "stopped status")
        assert status.messages[0] == {"state": "online"} and status.messages[-1]["messages"] == 10
    finally:
        every.close()
        status.close()
    late = Subscriber(broker.port, "line1/verdicts/status")  # the status is retained for newcomers
    try:
        wait_until(lambda: late.messages, 10, "retained status")
        # QoS 1 is at-least-once (and a resubscription redelivers the retained
        # message): what a newcomer may see is this record, possibly twice, and nothing else
        assert late.messages and all(m == {"state": "stopped", "messages": 10} for m in late.messages)
    finally:
        late.close()


def test_anomalies_only_and_qos_0(tiny_bundle, broker):
    sub = Subscriber(broker.port, "t")
    frames = synthetic_frames(8)
    insp = Inspector(tiny_bundle.path, "torch")
    threshold = sorted(r.score for r in insp(frames))[4]  # about half the frames are anomalous
    try:
        lines, summary = run(tiny_bundle, [IterableSource(frames, "cam")],
                             [MqttSink(MqttOptions(f"mqtt://127.0.0.1:{broker.port}/t", anomalies_only=True, qos=0,
                                                   reconnect_s=FAST))], threshold=threshold)
        bad = [x for x in lines if x["anomalous"]]
        wait_until(lambda: len(sub.messages) >= len(bad), 10, "anomalies")
        assert 0 < len(bad) < len(lines) and sub.messages == bad
        assert summary["sinks"]["mqtt"]["messages"] == len(bad) == summary["sinks"]["mqtt"]["published"]
    finally:
        sub.close()


def test_broker_down_mid_stream_loses_no_frames_and_the_sink_counts_its_drops(tiny_bundle, broker):
    """Frames 0-7 while the broker is up, 8-19 while it is down (a buffer of 4
    keeps 16-19, drops 8-15), 20-29 after it is back."""
    sub = Subscriber(broker.port, "plant/verdicts")
    sink = MqttSink(MqttOptions(f"mqtt://127.0.0.1:{broker.port}/plant/verdicts", buffer=4, reconnect_s=FAST,
                                retain_status=False))
    runner = None
    frames = synthetic_frames(30)

    waits_failed = []  # the runner reads a raising source as a lost one: keep what timed out to report it

    def camera():
        for i, f in enumerate(frames):
            try:
                if i == 0:  # the sink connects in paho's thread: frames before that wait in its buffer of 4,
                    # and a 5th verdict written before the CONNACK would drop frame 0 (8 never published)
                    wait_until(lambda: sink.client.is_connected(), 20, "the sink's first connection")
                if i == 8:  # everything so far delivered, then the broker goes away
                    wait_until(lambda: sink.published == 8, 20, "8 published")
                    broker.stop()
                    wait_until(lambda: not sink.client.is_connected(), 20, "sink to notice the outage")
                if i == 20:  # frames 8-19 went through the pipeline while it was down; it comes back
                    wait_until(lambda: runner.stats.total("frames") == 20 and sink.messages == 20, 20, "frames 8-19")
                    broker.start()
                    wait_until(lambda: sink.client.is_connected() and sub.subscribed.is_set(), 20, "reconnect")
            except AssertionError as exc:
                waits_failed.append(f"frame {i}: {exc}")
                raise
            yield f

    out = io.StringIO()
    runner = StreamRunner(Inspector(tiny_bundle.path, "torch"), [IterableSource(camera(), "cam")],
                          StreamOptions(max_batch=2), sinks=[JsonLinesSink(stream=out), sink])
    try:
        summary = runner.run()
        assert not waits_failed
        lines = [json.loads(x) for x in out.getvalue().splitlines()]
        assert [x["frame"] for x in lines] == list(range(30))  # the pipeline lost nothing
        assert summary["frames"] == 30 and summary["sinks"]["mqtt"] == {
            "url": sink.opt.url, "messages": 30, "published": 22, "dropped": 8, "unsent": 0}
        wait_until(lambda: len({m["frame"] for m in sub.messages}) >= 22, 10, "messages after the reconnect")
        received = sorted({m["frame"] for m in sub.messages})  # QoS 1: a resend may repeat one
        assert received == [*range(8), *range(16, 30)]
    finally:
        sub.close()


def test_a_stream_that_ends_before_the_first_connection_still_delivers(broker):
    """Verdicts written and the sink closed at once, before paho's thread has the
    broker's CONNACK: close() waits for the connection, then for the acknowledgements."""
    from types import SimpleNamespace

    from cfnc_edge.stream.sinks.base import Verdict

    sub = Subscriber(broker.port, "short")
    sink = MqttSink(MqttOptions(f"mqtt://127.0.0.1:{broker.port}/short", reconnect_s=FAST, retain_status=False))
    result = SimpleNamespace(score=1.5, normalized_score=None, anomalous=False)
    try:
        sink.open(SimpleNamespace(log=lambda line: None))
        for i in range(3):
            sink.write(Verdict(0, "cam", "cam", None, i, 0.0, 1.0, np.zeros((2, 2, 3), np.uint8), result))
        assert sink.close() == {"url": sink.opt.url, "messages": 3, "published": 3, "dropped": 0, "unsent": 0}
        wait_until(lambda: len(sub.messages) >= 3, 10, "3 messages")
        assert sorted({m["frame"] for m in sub.messages}) == [0, 1, 2]
    finally:
        sub.close()


def test_broker_unreachable_from_the_start_never_blocks_the_stream(tiny_bundle, folder):
    from stream_helpers import free_port

    sink = MqttSink(MqttOptions(f"mqtt://127.0.0.1:{free_port()}/x", buffer=3, reconnect_s=FAST,
                                close_timeout_s=0.5))
    lines, summary = run(tiny_bundle, [FolderSource(folder)], [sink])
    assert len(lines) == 10
    assert summary["sinks"]["mqtt"] == {"url": sink.opt.url, "messages": 10, "published": 0, "dropped": 7,
                                        "unsent": 3}


@pytest.mark.parametrize("url", ["http://h/t", "mqtt://h:1883/", "mqtt:///t", "mqtt://h/a/#"])
def test_bad_mqtt_urls_are_one_line_errors(url):
    with pytest.raises(CfncError, match="--mqtt"):
        MqttSink(url)


def test_the_cli_wires_mqtt_and_metrics(tiny_bundle, folder, broker, tmp_path):
    import subprocess
    import sys

    sub = Subscriber(broker.port, "cli/v")
    try:
        r = subprocess.run([sys.executable, "-m", "cfnc_edge", "stream", "--bundle", str(tiny_bundle.path),
                            "--backend", "torch", "--source", str(folder), "--output", str(tmp_path / "v.jsonl"),
                            "--mqtt", f"mqtt://127.0.0.1:{broker.port}/cli/v", "--mqtt-qos", "2",
                            "--metrics-port", "0"], capture_output=True, text=True, timeout=180)
        assert r.returncode == 0, r.stderr
        summary = json.loads(r.stderr.split("summary: ", 1)[1].splitlines()[0])
        lines = [json.loads(x) for x in (tmp_path / "v.jsonl").read_text().splitlines()]
        wait_until(lambda: len(sub.messages) >= 10, 10, "10 messages")
        assert sub.messages == lines and summary["sinks"]["mqtt"]["published"] == 10
        assert summary["sinks"]["metrics"]["port"] > 0 and "metrics: http://" in r.stderr
    finally:
        sub.close()
