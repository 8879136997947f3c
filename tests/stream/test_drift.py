"""The drift alarm: conformal p-values, the mixture of power martingales, Ville's bound, real shifts."""

import io
import urllib.request

import cv2
import numpy as np
import pytest
from stream_helpers import Subscriber, wait_until

from cfnc_edge.api.streaming import good_scores
from cfnc_edge.data.synthetic import render_good
from cfnc_edge.errors import CfncError
from cfnc_edge.runtime.inspector import Inspector
from cfnc_edge.stream.drift import EPS, DriftMonitor, log_martingale
from cfnc_edge.stream.runner import StreamOptions, StreamRunner
from cfnc_edge.stream.sinks import JsonLinesSink
from cfnc_edge.stream.sinks.metrics import MetricsSink
from cfnc_edge.stream.sinks.mqtt import MqttOptions, MqttSink
from cfnc_edge.stream.sources import IterableSource


def test_ville_bound_holds_on_uniform_p_values():
    """P(sup M >= C) <= 1/C: 4000 runs of 1500 uniform p-values; tolerance 3 binomial standard errors."""
    rng = np.random.default_rng(0)
    runs, peaks = 4000, []
    for _ in range(runs // 500):
        peaks.append(log_martingale(rng.uniform(size=(500, 1500))).max(-1))
    peaks = np.concatenate(peaks)
    for c in (2.0, 10.0, 100.0):
        rate = float((peaks >= np.log(c)).mean())
        assert rate <= 1 / c + 3 * np.sqrt((1 / c) * (1 - 1 / c) / runs), (c, rate)
    assert (peaks >= np.log(2)).mean() > 0.1  # the martingale does move: the check above could fail


def test_streaming_update_matches_the_float64_reference(rng):
    """DriftMonitor's running mixture equals the mean over the grid of the products, computed directly."""
    m = DriftMonitor(rng.uniform(0, 0.6, 50), alarm=1e300)
    ps, ms = [], []
    for s in rng.uniform(0, 0.8, 300):
        d = m.update(s)
        ps.append(d.p_value)
        ms.append(d.martingale)
    p = np.array(ps)
    direct = np.mean(np.prod(EPS * p[:, None] ** (EPS - 1), axis=0))  # float64, no logs
    np.testing.assert_allclose(ms[-1], direct, rtol=1e-9)
    np.testing.assert_allclose(np.log(ms), log_martingale(p), rtol=1e-9, atol=1e-12)


def test_conformal_p_values_are_uniform_under_exchangeability_even_with_ties():
    """Good and stream scores from one distribution, 30% of them clipped to 1 (ties): uniform p-values."""
    from scipy import stats

    rng = np.random.default_rng(3)
    draw = lambda n: np.minimum(rng.normal(0.8, 0.4, n), 1.0)  # noqa: E731
    m = DriftMonitor(draw(200), alarm=100)
    p = np.array([m.update(s).p_value for s in draw(5000)])
    assert stats.kstest(p, "uniform").pvalue > 0.01


def test_no_alarm_on_a_long_stationary_stream_and_alarm_after_a_shift():
    rng = np.random.default_rng(5)
    m = DriftMonitor(rng.normal(0.3, 0.05, 200), alarm=100, seed=5)
    for s in rng.normal(0.3, 0.05, 20000):
        m.update(s)
    assert m.alarm_frame is None
    for k in range(1, 1001):  # scores up by 4 standard deviations, after 20000 good frames
        if m.update(rng.normal(0.5, 0.05)).alarm:
            break
    assert k <= 150, k  # measured 67-110 over seeds 0-4


def test_bad_alarm_level_is_a_user_error():
    with pytest.raises(CfncError, match="--drift-alarm"):
        DriftMonitor([0.3], alarm=1.0)


# ---- real frames through the stream ------------------------------------------------------------
def _parts(n, change=None, at=0, seed=7):
    rng = np.random.default_rng(seed)
    for i in range(n):
        f = np.clip(render_good(rng, 96)[0], 0, 255)
        if i >= at and change == "brightness":
            f = np.clip(f * 1.5, 0, 255)
        elif i >= at and change == "camera shift":  # a quarter of the frame: beyond the parts' own play (6%)
            f = cv2.warpAffine(f, np.float32([[1, 0, 24], [0, 1, 14]]), (96, 96), borderMode=cv2.BORDER_REPLICATE)
        yield f.astype(np.uint8)


def _stream(bundle, frames, sinks=()):
    insp = Inspector(bundle.path, "torch")
    runner = StreamRunner(insp, [IterableSource(frames, "line")], StreamOptions(),
                          sinks=[JsonLinesSink(stream=io.StringIO()), *sinks], good_scores=good_scores(insp, 100, print))
    return runner, runner.run()


@pytest.mark.parametrize("change", ["brightness", "camera shift"])
def test_alarm_within_40_frames_of_a_real_change(tiny_bundle, change):
    runner, summary = _stream(tiny_bundle, _parts(100, change, at=50))
    alarm = runner.drift[0].alarm_frame
    assert alarm is not None and 50 < alarm <= 90, alarm  # measured: 20 frames after the brightness step, 21 after the shift
    assert any("drift alarm at frame" in w for w in summary["warnings"])
    assert summary["sources"]["line"]["drift_alarm"] is True


def test_no_alarm_on_a_stationary_stream_of_real_parts(tiny_bundle):
    runner, summary = _stream(tiny_bundle, _parts(400))
    assert runner.drift[0].alarm_frame is None and not summary["warnings"]
    assert summary["sources"]["line"]["drift"] < 100


def test_the_alarm_reaches_prometheus_and_mqtt_status(tiny_bundle, broker):
    metrics, mqtt = MetricsSink(0, "127.0.0.1"), MqttSink(MqttOptions(f"mqtt://127.0.0.1:{broker.port}/line"))
    status = Subscriber(broker.port, "line/status")
    scraped = {}
    holder = {}

    def frames():
        yield from _parts(100, "camera shift", at=30)
        # still running: what Prometheus sees once the alarm is raised
        wait_until(lambda: holder["runner"].stats.sources[0].drift_alarm, what="the drift alarm")
        scraped["text"] = urllib.request.urlopen(f"http://127.0.0.1:{metrics.port}/metrics").read().decode()

    insp = Inspector(tiny_bundle.path, "torch")
    runner = StreamRunner(insp, [IterableSource(frames(), "line")], StreamOptions(),
                          sinks=[JsonLinesSink(stream=io.StringIO()), metrics, mqtt],
                          good_scores=good_scores(insp, 100, print))
    holder["runner"] = runner
    runner.run()
    lines = dict(line.split(" ") for line in scraped["text"].splitlines() if line.startswith("cfnc_stream_drift"))
    assert lines['cfnc_stream_drift_alarm{source="line"}'] == "1.0"
    assert float(lines['cfnc_stream_drift{source="line"}']) >= 100
    wait_until(lambda: any("drift_alarm" in m for m in status.messages), what="the drift alarm on MQTT status")
    status.close()
    alarmed = [m for m in status.messages if "drift_alarm" in m]
    assert alarmed[0]["state"] == "online" and "line" in alarmed[0]["drift_alarm"]


def test_the_bundle_records_its_sorted_good_scores(tiny_bundle):
    t = tiny_bundle.manifest["threshold"]
    assert len(t["good_scores"]) == t["n"] and t["good_scores"] == sorted(t["good_scores"])
    # 12 images cannot hold 1% by rank: the threshold is the Gumbel tail's (threshold_for_fpr)
    assert "tail" in t and t["value"] > t["good_mean"] and t["good_scores"][-1] == pytest.approx(t["good_max"], rel=1e-5)

