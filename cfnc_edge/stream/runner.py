"""Streaming inspection: capture, inference and output in their own threads.

    source threads --(bounded queues)--> inference thread --(queue)--> output thread

Live sources keep only their newest frame (stale frames are dropped and
counted, so latency does not grow); files and folders block instead, so every
frame is processed in order. Frames of several sources are batched into one
backend call when more than one is waiting, up to `max_batch`, and a batch
waits for more frames only while the oldest frame is younger than
`max_wait_ms`. A source that fails is reopened with exponential backoff and
the outage is reported; a corrupt frame is skipped and counted.
"""

from __future__ import annotations

import json
import queue
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import cv2
import numpy as np

from cfnc_edge.report.visualize import panel
from cfnc_edge.runtime.inspector import Inspector
from cfnc_edge.stream.sources import CorruptFrame


@dataclass
class Frame:
    source: int
    index: int
    timestamp: float  # wall clock at capture
    t_capture: float  # perf_counter at capture, for latency
    image: np.ndarray


@dataclass
class Stats:
    processed: int = 0
    anomalies: int = 0
    dropped: int = 0
    corrupt: int = 0
    reconnects: int = 0
    outages: list[str] = field(default_factory=list)
    latencies_ms: deque = field(default_factory=lambda: deque(maxlen=2000))
    started: float = field(default_factory=time.perf_counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def summary(self) -> dict:
        lat = np.array(self.latencies_ms) if self.latencies_ms else np.zeros(1)
        elapsed = time.perf_counter() - self.started
        return {"frames": self.processed, "anomalies": self.anomalies, "dropped": self.dropped,
                "corrupt": self.corrupt, "reconnects": self.reconnects, "outages": self.outages,
                "seconds": round(elapsed, 2), "fps": round(self.processed / max(elapsed, 1e-9), 2),
                "latency_p50_ms": round(float(np.percentile(lat, 50)), 2),
                "latency_p99_ms": round(float(np.percentile(lat, 99)), 2)}


@dataclass
class StreamOptions:
    max_batch: int = 4
    max_wait_ms: float = 5.0
    save: Path | None = None  # annotated video (video sources) or images (folders)
    save_anomalies: Path | None = None
    show: bool = False
    max_frames: int | None = None  # stop after this many frames in all (soak tests)
    backoff_start_s: float = 0.5
    backoff_max_s: float = 8.0
    max_reopen: int | None = None  # None: keep trying (live); files give up after this many


class StreamRunner:
    def __init__(self, inspector: Inspector, sources: list, options: StreamOptions | None = None,
                 out: IO[str] | None = None, status: IO[str] | None = None):
        self.insp, self.sources = inspector, sources
        self.opt = options or StreamOptions()
        self.out = out or sys.stdout
        self.status = status
        self.stats = Stats()
        self.stop_event = threading.Event()
        self.queues = [queue.Queue(maxsize=1 if s.live else 2 * self.opt.max_batch) for s in sources]
        self.done = [False] * len(sources)
        self.ready = threading.Condition()
        self.results: queue.Queue = queue.Queue(maxsize=64)
        self.writers: dict[int, cv2.VideoWriter] = {}
        for s in sources:
            s.open()  # a source that cannot be opened at all fails here, before any thread starts

    # ---- capture -------------------------------------------------------
    def _put(self, i: int, frame: Frame) -> None:
        q = self.queues[i]
        if self.sources[i].live:
            try:
                q.get_nowait()  # the newest frame wins
                with self.stats.lock:
                    self.stats.dropped += 1
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

    def _capture(self, i: int) -> None:
        src = self.sources[i]
        backoff, failures = self.opt.backoff_start_s, 0
        while not self.stop_event.is_set():
            try:
                got = src.read()
            except CorruptFrame as exc:
                with self.stats.lock:
                    self.stats.corrupt += 1
                self._log(f"skipped corrupt frame: {exc}")
                continue
            except Exception as exc:  # noqa: BLE001 - SourceLost, decoder errors, I/O: all mean "reopen"
                failures += 1
                if self.opt.max_reopen is not None and failures > self.opt.max_reopen:
                    self._log(f"{src.name}: giving up after {failures - 1} reopen attempts ({exc})")
                    break
                msg = f"{src.name}: {exc}; reopening in {backoff:.1f}s"
                with self.stats.lock:
                    self.stats.outages.append(msg)
                self._log(msg)
                src.close()
                if self.stop_event.wait(backoff):
                    break
                backoff = min(backoff * 2, self.opt.backoff_max_s)
                try:
                    src.open()
                    with self.stats.lock:
                        self.stats.reconnects += 1
                    backoff = self.opt.backoff_start_s
                except Exception as exc2:  # noqa: BLE001
                    self._log(f"{src.name}: reopen failed ({exc2})")
                continue
            if got is None:
                break
            failures = 0
            idx, image = got
            self._put(i, Frame(i, idx, time.time(), time.perf_counter(), image))
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
    def _output(self) -> None:
        scale = 2 * self.insp.threshold if self.insp.threshold else None
        while (item := self.results.get()) is not None:
            f, r, latency = item
            src = self.sources[f.source]
            line = {"source": src.name, "frame": f.index, "timestamp": round(f.timestamp, 3),
                    "score": round(r.score, 4),
                    "normalized_score": None if r.normalized_score is None else round(r.normalized_score, 4),
                    "anomalous": r.anomalous, "latency_ms": round(latency, 2)}
            self.out.write(json.dumps(line) + "\n")
            with self.stats.lock:
                self.stats.processed += 1
                self.stats.anomalies += bool(r.anomalous)
                self.stats.latencies_ms.append(latency)
            if self.opt.save or self.opt.save_anomalies or self.opt.show:
                view = panel(f.image, r.full_map(), r.score, r.anomalous, scale or 2 * r.score,
                             width=min(640, f.image.shape[1]))
                self._save(f, src, view)
                if r.anomalous and self.opt.save_anomalies:
                    d = Path(self.opt.save_anomalies) / src.name
                    d.mkdir(parents=True, exist_ok=True)
                    cv2.imwrite(str(d / f"{f.index:06d}.png"), view)
                if self.opt.show:
                    self._show(src.name, view)
        self.out.flush()

    def _save(self, f: Frame, src, view: np.ndarray) -> None:
        if not self.opt.save:
            return
        root = Path(self.opt.save)
        if hasattr(src, "frame_name"):
            d = root / src.name
            d.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(d / f"{src.frame_name(f.index)}.png"), view)
            return
        w = self.writers.get(f.source)
        if w is None:
            root.mkdir(parents=True, exist_ok=True)
            name = src.name.replace("/", "_").replace(":", "_")
            w = cv2.VideoWriter(str(root / f"{name}.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), src.fps,
                                (view.shape[1], view.shape[0]))
            self.writers[f.source] = w
        w.write(view)

    def _show(self, name: str, view: np.ndarray) -> None:
        try:
            cv2.imshow(name, view)
            cv2.waitKey(1)
        except cv2.error:
            self._log("--show: this OpenCV build or machine has no display; not showing frames")
            self.opt.show = False

    # ---- running -------------------------------------------------------
    def _log(self, msg: str) -> None:
        if self.status is not None:
            self.status.write(f"\n{msg}\n")
            self.status.flush()

    def _status_line(self) -> str:
        s = self.stats.summary()
        return (f"{s['frames']} frames  {s['fps']:.1f} fps  latency p50 {s['latency_p50_ms']:.1f} ms "
                f"p99 {s['latency_p99_ms']:.1f} ms  dropped {s['dropped']}  corrupt {s['corrupt']}  "
                f"anomalies {s['anomalies']}")

    def run(self) -> dict:
        threads = [threading.Thread(target=self._capture, args=(i,), daemon=True, name=f"capture-{i}")
                   for i in range(len(self.sources))]
        threads += [threading.Thread(target=self._infer, daemon=True, name="inference")]
        writer = threading.Thread(target=self._output, daemon=True, name="output")
        for t in threads + [writer]:
            t.start()
        try:
            while writer.is_alive():
                writer.join(0.5)
                if self.status is not None and self.status.isatty():
                    self.status.write("\r" + self._status_line())
                    self.status.flush()
        except KeyboardInterrupt:
            self.stop_event.set()
            writer.join()
        finally:
            self.stop_event.set()
            writer.join()
            for w in self.writers.values():
                w.release()
            for s in self.sources:
                s.close()
        return self.stats.summary()

    def stop(self) -> None:
        self.stop_event.set()
