"""Frame sources for streaming: cameras, video files, stream URLs, image folders.

A source yields (index, frame) in order. `live` sources (cameras, network
streams) produce frames whether or not anyone keeps up, so the pipeline keeps
only the newest; files and folders are read at the pace of the consumer and
every frame is processed.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from cfnc_edge.errors import CfncError
from cfnc_edge.images import IMAGE_SUFFIXES, list_images, to_bgr


class CorruptFrame(Exception):
    """A single frame could not be decoded; the source itself is fine."""


class SourceLost(Exception):
    """The source stopped delivering (disconnect, stall): reopen it."""


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

    def open(self) -> None:
        if not self.is_camera and not self.is_url and not Path(self.spec).is_file():
            raise CfncError(f"video file {self.spec} does not exist")
        cap = cv2.VideoCapture(self.spec)
        if not cap.isOpened():
            raise CfncError(f"cannot open {'camera' if self.is_camera else 'source'} {self.spec}")
        if not self.live and self.next_index:
            cap.set(cv2.CAP_PROP_POS_FRAMES, self.next_index)  # resume after a reopen
        self.cap = cap

    @property
    def fps(self) -> float:
        fps = self.cap.get(cv2.CAP_PROP_FPS) if self.cap is not None else 0
        return fps if fps and fps > 0 else 25.0

    def read(self) -> tuple[int, np.ndarray] | None:
        """Next (index, BGR frame); None at the end of a file."""
        ok, frame = self.cap.read()
        if not ok:
            if self.live:
                raise SourceLost(f"{self.name}: no frame")
            return None
        i = self.next_index
        self.next_index += 1
        if frame is None or frame.size == 0:
            raise CorruptFrame(f"{self.name} frame {i}")
        return i, to_bgr(frame, source=f"{self.name} frame {i}")

    def close(self) -> None:
        if self.cap is not None:
            self.cap.release()
            self.cap = None


class FolderSource:
    """Images of a folder in name order (reproducible runs)."""

    live = False

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

    fps = 10.0

    def read(self) -> tuple[int, np.ndarray] | None:
        if self.next_index >= len(self.paths):
            return None
        i = self.next_index
        self.next_index += 1
        frame = cv2.imread(str(self.paths[i]), cv2.IMREAD_UNCHANGED)
        if frame is None:
            raise CorruptFrame(f"{self.paths[i]}")
        return i, to_bgr(frame, source=str(self.paths[i]))

    def frame_name(self, index: int) -> str:
        return self.paths[index].stem

    def close(self) -> None:
        pass


def make_source(spec: str | int) -> VideoSource | FolderSource:
    if isinstance(spec, int):
        return VideoSource(spec)
    if "://" not in spec and Path(spec).is_dir():
        return FolderSource(spec)
    return VideoSource(spec)
