"""Prometheus metrics: scraped during a stream, checked against the runner's summary."""

import io
import json
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families
from stream_helpers import (
    folder_with_a_corrupt_image,
    free_port,
    synthetic_frames,
    wait_until,
)

from cfnc_edge.errors import CfncError
from cfnc_edge.runtime.inspector import Inspector
from cfnc_edge.stream.runner import StreamOptions, StreamRunner
from cfnc_edge.stream.sinks import JsonLinesSink
from cfnc_edge.stream.sinks.metrics import MetricsSink
from cfnc_edge.stream.sources import FolderSource, IterableSource


def scrape(port):
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    return {(s.name, s.labels.get("source"), s.labels.get("le")): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def test_metrics_scraped_mid_stream_match_the_summary(tiny_bundle, folder, tmp_path):
    with_corrupt = folder_with_a_corrupt_image(folder, tmp_path / "parts")
    sink = MetricsSink(0, "127.0.0.1")
    runner, seen = None, {}
    frames = synthetic_frames(12)

    def camera():
        for i, f in enumerate(frames):
            if i == 8:  # the folder is done and 8 camera frames are through: nothing in flight
                wait_until(lambda: runner.stats.total("frames") == 5 + 8, 30, "13 frames")
                wait_until(lambda: scrape(sink.port).get(("cfnc_stream_latency_seconds_count", "cam", None)) == 8,
                           30, "latency of 8 frames")
                seen["metrics"], seen["summary"] = scrape(sink.port), runner.stats.summary()
            yield f

    runner = StreamRunner(Inspector(tiny_bundle.path, "torch", "fp32", 1e-6),
                          [FolderSource(with_corrupt), IterableSource(camera(), "cam")], StreamOptions(),
                          sinks=[JsonLinesSink(stream=io.StringIO()), sink])
    final = runner.run()
    m, s = seen["metrics"], seen["summary"]
    for source, expected in (("parts", 5), ("cam", 8)):
        st = s["sources"][source]
        assert m[("cfnc_stream_frames_total", source, None)] == st["frames"] == expected
        assert m[("cfnc_stream_anomalies_total", source, None)] == st.get("anomalies", 0) == expected
        assert m[("cfnc_stream_corrupt_frames_total", source, None)] == st.get("corrupt", 0)
        for name, key in (("dropped_frames", "dropped"), ("source_outages", "outages"), ("reconnects", "reconnects")):
            assert m[(f"cfnc_stream_{name}_total", source, None)] == st.get(key, 0)
        assert m[("cfnc_stream_latency_seconds_count", source, None)] == expected
        assert m[("cfnc_stream_latency_seconds_bucket", source, "+Inf")] == expected
        assert m[("cfnc_stream_fps", source, None)] > 0
    assert m[("cfnc_stream_corrupt_frames_total", "parts", None)] == 1 == final["corrupt"]
    assert m[("cfnc_stream_source_up", "cam", None)] == 1 and m[("cfnc_stream_source_up", "parts", None)] == 0
    assert final["frames"] == 17 and final["sources"]["cam"]["frames"] == 12
    assert json.dumps(final["sinks"]["metrics"]) == json.dumps({"port": sink.port})


def test_a_busy_metrics_port_is_a_one_line_error(tiny_bundle, folder):
    port = free_port()
    first = MetricsSink(port, "127.0.0.1")
    runner = StreamRunner(Inspector(tiny_bundle.path, "torch"), [FolderSource(folder)], StreamOptions(),
                          sinks=[JsonLinesSink(stream=io.StringIO()), first, MetricsSink(port, "127.0.0.1")])
    with pytest.raises(CfncError, match=f"--metrics-port {port}"):
        runner.run()
    with pytest.raises(OSError):  # the first one was shut down with the failed start
        scrape(port)
