"""Frame sources for streaming: cameras, video files, stream URLs, image folders, Python iterables.

A source yields (index, frame) in order. `live` sources (cameras, network
streams) produce frames whether or not anyone keeps up, so the pipeline keeps
only the newest; files and folders are read at the pace of the consumer and
every frame is processed.

Any object with the `FrameSource` attributes can be streamed; the exceptions
below are how a source tells the runner what went wrong.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from cfnc_edge.errors import CfncError, DataError
from cfnc_edge.images import IMAGE_SUFFIXES, list_images, read_image, to_bgr


class CorruptFrame(Exception):
    """A single frame could not be decoded; the source itself is fine."""


class SourceLost(Exception):
    """The source stopped delivering (disconnect, stall): reopen it."""


class EndedEarly(Exception):
    """A file ended before the frame count its container announces (damaged or truncated).

    `missing` frames could not be decoded; the runner counts them as corrupt.
    """

    def __init__(self, message: str, missing: int):
        super().__init__(message)
        self.missing = missing


@runtime_checkable
class FrameSource(Protocol):
    """What StreamRunner needs from a source of frames.

    `read()` returns the next (index, BGR uint8 frame), or None at the end; it
    raises CorruptFrame for one bad frame, EndedEarly for a file cut short,
    and anything else (SourceLost, I/O errors) to ask for a reopen.
    `frame_name(index)` names a saved frame: a file stem for sources whose
    frames are separate pictures (folders), None for frames that form a
    video (cameras, files, URLs).
    """

    name: str
    live: bool

    @property
    def fps(self) -> float: ...

    def open(self) -> None: ...

    def read(self) -> tuple[int, np.ndarray] | None: ...

    def frame_name(self, index: int) -> str | None: ...

    def close(self) -> None: ...


class VideoSource:
    """A camera index, a video file, or an RTSP/HTTP URL, through OpenCV."""

    def __init__(self, spec: str | int):
        self.spec = spec
        self.is_camera = isinstance(spec, int)
        self.is_url = isinstance(spec, str) and "://" in spec
        self.live = self.is_camera or self.is_url
        self.name = f"camera{spec}" if self.is_camera else (spec if self.is_url else Path(spec).stem)
        self.cap: cv2.VideoCapture | None = None
        self.next_index = 0
        self.expected = 0  # frames the file's container announces (0: unknown or live)

    def open(self) -> None:
        if not self.is_camera and not self.is_url and not Path(self.spec).is_file():
            raise CfncError(f"video file {self.spec} does not exist")
        cap = cv2.VideoCapture(self.spec)
        if not cap.isOpened():
            raise CfncError(f"cannot open {'camera' if self.is_camera else 'source'} {self.spec}")
        if not self.live:
            self.expected = max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT)))
            if self.next_index:
                cap.set(cv2.CAP_PROP_POS_FRAMES, self.next_index)  # resume after a reopen
        self.cap = cap

    @property
    def fps(self) -> float:
        fps = self.cap.get(cv2.CAP_PROP_FPS) if self.cap is not None else 0
        return fps if fps and fps > 0 else 25.0

    def read(self) -> tuple[int, np.ndarray] | None:
        """Next (index, BGR frame); None at the end of a file."""
        if self.cap is None:
            raise SourceLost("not open")
        ok, frame = self.cap.read()
        if not ok:
            if self.live:
                raise SourceLost("no frame received (stream stalled or disconnected)")
            if self.next_index < self.expected:
                # OpenCV cannot seek past a damaged stretch (tried: every later
                # frame fails too), so the rest of the file is lost: say so
                missing = self.expected - self.next_index
                raise EndedEarly(f"{self.name}: read {self.next_index} of the {self.expected} frames its "
                                 f"container announces; {missing} could not be decoded (damaged or truncated "
                                 f"file)", missing)
            return None
        i = self.next_index
        self.next_index += 1
        if frame is None or frame.size == 0:
            raise CorruptFrame(f"{self.name} frame {i}")
        return i, to_bgr(frame, source=f"{self.name} frame {i}")

    def frame_name(self, index: int) -> None:
        return None

    def close(self) -> None:
        if self.cap is not None:
            self.cap.release()
            self.cap = None


class FolderSource:
    """Images of a folder in name order (reproducible runs)."""

    live = False
    fps = 10.0

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.name = self.folder.name
        self.paths: list[Path] = []
        self.next_index = 0

    def open(self) -> None:
        if not self.folder.is_dir():
            raise CfncError(f"image folder {self.folder} does not exist")
        self.paths = list_images(self.folder)
        if not self.paths:
            raise CfncError(f"{self.folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")

    def read(self) -> tuple[int, np.ndarray] | None:
        if self.next_index >= len(self.paths):
            return None
        i = self.next_index
        self.next_index += 1
        try:
            return i, read_image(self.paths[i])
        except DataError as exc:
            raise CorruptFrame(str(exc)) from None

    def frame_name(self, index: int) -> str:
        return self.paths[index].stem

    def close(self) -> None:
        pass


class IterableSource:
    """Frames from any Python iterable (a camera SDK, a generator, a list of arrays).

    `live=True` for an iterable that produces frames on its own clock (the
    runner then keeps only the newest); the default reads at the consumer's pace.
    """

    def __init__(self, frames: Iterable[np.ndarray], name: str = "frames", live: bool = False,
                 fps: float = 25.0):
        self.frames, self.name, self.live, self.fps = frames, name, live, fps
        self._it: Iterator[np.ndarray] | None = None
        self.next_index = 0

    def open(self) -> None:
        if self._it is None:  # a reopen continues the same iterator
            self._it = iter(self.frames)

    def read(self) -> tuple[int, np.ndarray] | None:
        frame = next(self._it, None)
        if frame is None:
            return None
        i = self.next_index
        self.next_index += 1
        return i, to_bgr(np.asarray(frame), source=f"{self.name} frame {i}")

    def frame_name(self, index: int) -> None:
        return None

    def close(self) -> None:
        pass


def make_source(spec: str | int) -> VideoSource | FolderSource:
    """A source for a CLI spec: camera index, image folder, video file or URL."""
    if isinstance(spec, int):
        return VideoSource(spec)
    if "://" not in spec and Path(spec).is_dir():
        return FolderSource(spec)
    return VideoSource(spec)
