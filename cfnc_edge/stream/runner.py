"""Streaming inspection: capture, inference and outputs in their own threads.

    source threads --(bounded queues)--> inference thread --(queue)--> dispatcher --> one thread per sink

Live sources keep only their newest frame (stale frames are dropped and
counted, so latency does not grow); files and folders block instead, so every
frame is processed in order. Frames of several sources are batched into one
backend call when more than one is waiting, up to `max_batch`, and a batch
waits for more frames only while the oldest frame is younger than
`max_wait_ms`. A source that fails, or cannot be opened at the start while
others can, is reopened with exponential backoff and the outage is reported;
a corrupt frame is skipped and counted; a file that ends before the frame
count of its container is reported. Outputs are sinks (stream/sinks/), each
in its own thread, so a slow output does not hold inference.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

import numpy as np

from cfnc_edge.errors import CfncError
from cfnc_edge.stream.drift import DriftMonitor
from cfnc_edge.stream.naming import safe_name, unique
from cfnc_edge.stream.sinks.base import Sink, SinkThread, StreamContext, Verdict
from cfnc_edge.stream.sinks.jsonlines import JsonLinesSink
from cfnc_edge.stream.sources import CorruptFrame, EndedEarly, FrameSource
from cfnc_edge.stream.stats import Stats


@dataclass
class Frame:
    source: int
    index: int
    timestamp: float  # wall clock at capture
    t_capture: float  # perf_counter at capture, for latency
    image: np.ndarray


@dataclass
class StreamOptions:
    """How frames are captured and batched (outputs are sinks, chosen apart)."""

    max_batch: int = 4
    max_wait_ms: float = 5.0
    max_frames: int | None = None  # stop after this many frames in all (soak tests)
    backoff_start_s: float = 0.5
    backoff_max_s: float = 8.0
    max_reopen: int | None = None  # live sources: None keeps trying
    max_reopen_files: int = 3  # files and folders give up after this many failed attempts in a row
    drift_alarm: float = 100.0  # the drift test's alarm level C (false alarms <= 1/C, stream/drift.py); 0: off


class StreamRunner:
    """Runs `sources` through `inspector` and hands every verdict to `sinks`.

    `inspector`: anything callable on a list of BGR frames that returns one
    Inspection-like result per frame (score, threshold, anomalous,
    normalized_score, full_map()): the local Inspector or a remote client.
    `sources`: FrameSource objects. `sinks`: Sink objects; by default one
    JSON lines sink writing to `out` (stdout). `status`: a text stream for
    outage and warning lines (None: quiet). `good_scores`: the bundle's good-image
    scores, normalised like the verdicts' (None: no drift alarm). `run()` returns the summary.
    """

    def __init__(self, inspector: Callable[[list[np.ndarray]], list[Any]], sources: list[FrameSource],
                 options: StreamOptions | None = None, sinks: list[Sink] | None = None,
                 out: IO[str] | None = None, status: IO[str] | None = None, good_scores: np.ndarray | None = None):
        if not sources:
            raise CfncError("give at least one --camera N or --source PATH|URL")
        self.insp, self.sources = inspector, sources
        self.opt = options or StreamOptions()
        self.sinks = sinks if sinks is not None else [JsonLinesSink(stream=out or sys.stdout)]
        self.status = status
        self.labels = unique([s.name for s in sources], sep="#")
        self.file_names = unique([safe_name(s.name) for s in sources])
        self.stats = Stats(self.labels)
        self.stop_event = threading.Event()
        self.queues = [queue.Queue(maxsize=1 if s.live else 2 * self.opt.max_batch) for s in sources]
        self.done = [False] * len(sources)
        self.ready = threading.Condition()
        self.results: queue.Queue = queue.Queue(maxsize=64)
        self.sink_threads: list[SinkThread] = []
        on = good_scores is not None and self.opt.drift_alarm > 0
        self.drift = [DriftMonitor(good_scores, self.opt.drift_alarm, seed=i) for i in range(len(sources))] if on else []

    # ---- capture -------------------------------------------------------
    def _put(self, i: int, frame: Frame) -> None:
        q = self.queues[i]
        if self.sources[i].live:
            try:
                q.get_nowait()  # the newest frame wins
                with self.stats.lock:
                    self.stats.sources[i].dropped += 1
            except queue.Empty:
                pass
            q.put_nowait(frame)
        else:
            while not self.stop_event.is_set():
                try:
                    q.put(frame, timeout=0.1)
                    break
                except queue.Full:
                    continue
        with self.ready:
            self.ready.notify()

    def _note(self, i: int, state: str, outage: str | None = None, warning: str | None = None) -> None:
        with self.stats.lock:
            st = self.stats.sources[i]
            st.state = state
            if outage:
                st.outages += 1
                self.stats.outages.append(outage)
            if warning:
                self.stats.warnings.append(warning)
        self._log(outage or warning)

    def _capture(self, i: int, opened: bool, failures: int) -> None:
        src, label, st = self.sources[i], self.labels[i], self.stats.sources[i]
        limit = self.opt.max_reopen if src.live else self.opt.max_reopen_files
        backoff = self.opt.backoff_start_s
        while not self.stop_event.is_set():
            if not opened:
                if self.stop_event.wait(backoff):
                    break
                backoff = min(backoff * 2, self.opt.backoff_max_s)
                try:
                    src.open()
                except Exception as exc:  # noqa: BLE001 - any failure to open means "try again later"
                    failures += 1
                    if limit is not None and failures > limit:
                        self._note(i, "gave up", warning=f"{label}: gave up after {failures} attempts ({exc})")
                        break
                    self._log(f"{label}: reopen failed ({exc}); retrying in {backoff:.1f}s")
                    continue
                opened, backoff = True, self.opt.backoff_start_s
                with self.stats.lock:
                    st.reconnects += 1
                    st.state = "running"
                self._log(f"{label}: reopened")
                continue
            try:
                got = src.read()
            except CorruptFrame as exc:
                with self.stats.lock:
                    st.corrupt += 1
                self._log(f"skipped corrupt frame: {exc}")
                continue
            except EndedEarly as exc:
                with self.stats.lock:
                    st.corrupt += exc.missing
                self._note(i, "ended early", warning=str(exc))
                break
            except Exception as exc:  # noqa: BLE001 - SourceLost, decoder errors, I/O: all mean "reopen"
                failures += 1
                src.close()
                opened = False
                if limit is not None and failures > limit:
                    self._note(i, "gave up", warning=f"{label}: gave up after {failures} attempts ({exc})")
                    break
                self._note(i, "retrying", outage=f"{label}: {exc}; reopening in {backoff:.1f}s")
                continue
            if got is None:
                with self.stats.lock:
                    st.state = "ended"
                break
            failures = 0
            idx, image = got
            self._put(i, Frame(i, idx, time.time(), time.perf_counter(), image))
        with self.stats.lock:
            if st.state in ("running", "retrying", "starting"):
                st.state = "stopped"
        self.done[i] = True
        with self.ready:
            self.ready.notify()

    # ---- inference -----------------------------------------------------
    def _take(self, limit: int) -> list[Frame]:
        batch: list[Frame] = []
        for q in self.queues:
            while len(batch) < limit:
                try:
                    batch.append(q.get_nowait())
                except queue.Empty:
                    break
        return batch

    def _infer(self) -> None:
        inferred = 0
        while True:
            # read `done` before taking: a source sets it only after its last
            # frame is queued, so an empty take after it really is the end
            finished = all(self.done) or self.stop_event.is_set()
            batch = self._take(self.opt.max_batch)
            if not batch:
                if finished:
                    break
                with self.ready:
                    self.ready.wait(0.05)
                continue
            deadline = batch[0].t_capture + self.opt.max_wait_ms / 1000
            while len(batch) < self.opt.max_batch and time.perf_counter() < deadline and not all(self.done):
                with self.ready:
                    self.ready.wait(max(0.0, deadline - time.perf_counter()))
                batch += self._take(self.opt.max_batch - len(batch))
            if self.opt.max_frames is not None:
                batch = batch[: self.opt.max_frames - inferred]
            results = self.insp([f.image for f in batch])
            t_done = time.perf_counter()
            for f, r in zip(batch, results):
                self.results.put((f, r, (t_done - f.t_capture) * 1000))
            inferred += len(batch)
            if self.opt.max_frames is not None and inferred >= self.opt.max_frames:
                self.stop_event.set()
                break
        self.results.put(None)

    # ---- output --------------------------------------------------------
    def _test_drift(self, f: Frame, r: Any):
        """The frame's step of its source's drift test; the first alarm becomes a warning."""
        if not self.drift or r.normalized_score is None:
            return None
        monitor = self.drift[f.source]
        d = monitor.update(r.normalized_score)
        st, warning = self.stats.sources[f.source], None
        with self.stats.lock:
            if d.alarm and not st.drift_alarm:
                warning = (f"{self.labels[f.source]}: drift alarm at frame {f.index}: its scores no longer look "
                           f"like the bundle's good images (test martingale {d.martingale:.0f} >= {monitor.alarm:g};"
                           f" on an unchanged line at most a {100 / monitor.alarm:g}% chance): check the camera, the "
                           "light and the parts, then refit the bundle if the change is meant to stay")
                self.stats.warnings.append(warning)
            st.drift, st.drift_alarm = float(f"{d.martingale:.4g}"), d.alarm
        if warning:
            self._log(warning)
        return d

    def _dispatch(self) -> None:
        while (item := self.results.get()) is not None:
            f, r, latency = item
            with self.stats.lock:
                st = self.stats.sources[f.source]
                st.frames += 1
                st.anomalies += bool(r.anomalous)
                self.stats.latencies_ms.append(latency)
            v = Verdict(f.source, self.labels[f.source], self.file_names[f.source],
                        self.sources[f.source].frame_name(f.index), f.index, f.timestamp, latency, f.image, r,
                        drift=self._test_drift(f, r))
            for t in self.sink_threads:
                t.put(v)

    # ---- running -------------------------------------------------------
    def _log(self, msg: str) -> None:
        if self.status is not None:
            self.status.write(f"\n{msg}\n")
            self.status.flush()

    def _open_sources(self) -> list[bool]:
        """Open every source; the ones that fail are retried by their capture
        thread, unless none opens at all (then nothing is started or written)."""
        errors = []
        for i, src in enumerate(self.sources):
            try:
                src.open()
                self.stats.sources[i].state = "running"
            except Exception as exc:  # noqa: BLE001
                errors.append((i, exc))
        if len(errors) == len(self.sources):
            msg = "; ".join(str(e) if len(errors) == 1 else f"{self.labels[i]}: {e}" for i, e in errors)
            raise CfncError(msg if len(errors) == 1 else f"no source could be opened: {msg}")
        for i, exc in errors:
            self._note(i, "retrying", outage=f"{self.labels[i]}: cannot open ({exc}); retrying in "
                                            f"{self.opt.backoff_start_s:.1f}s while the others run")
        return [all(i != j for j, _ in errors) for i in range(len(self.sources))]

    def _open_sinks(self, ctx: StreamContext) -> None:
        for sink in self.sinks:
            try:
                sink.open(ctx)
            except Exception:
                for t in self.sink_threads:  # the ones already open
                    t.finish()
                raise
            self.sink_threads.append(SinkThread(sink, self._log))
            self.sink_threads[-1].start()

    def run(self) -> dict:
        """Stream until every source has ended (or `stop()`, SIGINT, `max_frames`); returns the summary."""
        opened = self._open_sources()
        try:
            self._open_sinks(StreamContext(self.sources, self.labels, self.file_names, self.stats, self._log))
        except BaseException:
            for s in self.sources:
                s.close()
            raise
        threads = [threading.Thread(target=self._capture, args=(i, opened[i], int(not opened[i])), daemon=True,
                                    name=f"capture-{i}") for i in range(len(self.sources))]
        threads += [threading.Thread(target=self._infer, daemon=True, name="inference")]
        dispatcher = threading.Thread(target=self._dispatch, daemon=True, name="dispatch")
        for t in threads + [dispatcher]:
            t.start()
        reports = []
        try:
            while dispatcher.is_alive():
                dispatcher.join(0.5)
        except KeyboardInterrupt:
            self.stop_event.set()
        finally:
            self.stop_event.set()
            dispatcher.join()
            reports = [t.finish() for t in self.sink_threads]
            for s in self.sources:
                s.close()
        summary = self.stats.summary()
        names = unique([t.sink.name for t in self.sink_threads])
        summary["sinks"] = {n: r for n, r in zip(names, reports) if r}
        return summary

    def stop(self) -> None:
        """Stop capturing; frames already captured are still inspected and written."""
        self.stop_event.set()
