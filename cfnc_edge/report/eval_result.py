"""What an evaluation found: the figures `eval` writes to metrics.json and its report."""

from __future__ import annotations

from dataclasses import dataclass, field

from cfnc_edge.bundle.schema import json_safe


@dataclass
class EvalResult:
    metrics: dict[str, float]
    per_defect: dict[str, dict[str, float]]
    threshold: dict = field(default_factory=dict)
    operating_point: dict = field(default_factory=dict)  # at the threshold, beside the oracle (metrics.operating_point)
    examples: list[str] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)  # pictures of the defects the threshold let through
    false_alarms: list[str] = field(default_factory=list)  # and of the good images it flagged
    seconds_per_image: float = 0.0
    skipped: list[dict] = field(default_factory=list)  # unusable images: {"path", "error"}
    images: list[dict] = field(default_factory=list)  # per image: path, defect, score, normalized_score, anomalous

    def to_dict(self) -> dict:
        """JSON-ready (undefined metrics such as PRO without masks are null, not NaN)."""
        return json_safe({"metrics": self.metrics, "per_defect": self.per_defect, "threshold": self.threshold,
                          "operating_point": self.operating_point,
                          "seconds_per_image": self.seconds_per_image, "skipped": self.skipped,
                          "images": self.images})
