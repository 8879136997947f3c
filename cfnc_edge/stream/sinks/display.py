"""`--show`: frames and heatmaps in a window, one per source."""

from __future__ import annotations

import os
import sys

import cv2

from cfnc_edge.stream.sinks.base import StreamContext, Verdict


def display_problem() -> str | None:
    """Why a window cannot be shown here, or None. Checked before the first
    imshow because a GUI OpenCV without a display can abort the process."""
    if any(line.split(":")[0].strip() == "GUI" and line.split(":", 1)[1].strip() == "NONE"
           for line in cv2.getBuildInformation().splitlines()):
        return "this OpenCV is the headless build; install the display extra: pip install 'cfnc-edge[display]'"
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return "no display here (DISPLAY is not set)"
    return None


class DisplaySink:
    """Shows each verdict's picture; without a usable display it says so in one line and does nothing."""

    name = "display"
    lossless = False  # a window shows the newest frame; it never holds the pipeline

    def __init__(self):
        self.enabled = False
        self.shown = 0
        self.log = print

    def open(self, ctx: StreamContext) -> None:
        self.log = ctx.log
        problem = display_problem()
        if problem:
            self.log(f"--show: {problem}; not showing frames")
        self.enabled = problem is None

    def write(self, v: Verdict) -> None:
        if not self.enabled:
            return
        try:
            cv2.imshow(v.label, v.view())
            cv2.waitKey(1)
            self.shown += 1
        except cv2.error as exc:
            self.log(f"--show: OpenCV cannot open a window ({str(exc).strip().splitlines()[-1]}); not showing frames")
            self.enabled = False

    def close(self) -> dict:
        if self.enabled:
            cv2.destroyAllWindows()
        return {"shown": self.shown}
