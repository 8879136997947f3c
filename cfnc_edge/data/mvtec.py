"""Reader for the MVTec AD folder layout.

    root/train/good/*.png
    root/test/good/*.png, root/test/<defect>/*.png
    root/ground_truth/<defect>/<stem>_mask.png

Problems are reported up front, naming the file, so a long run never dies
halfway through on a bad mask: `usable_samples` reads every image and mask
before anything is computed, and skips (or refuses) the ones that fail.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cfnc_edge.errors import DataError
from cfnc_edge.images import list_images, read_image, read_mask


@dataclass(frozen=True)
class Sample:
    path: Path
    defect: str  # "good" for normal images
    mask_path: Path | None

    @property
    def is_anomalous(self) -> bool:
        return self.defect != "good"

    def load(self) -> tuple[np.ndarray, np.ndarray]:
        """(BGR image, bool mask of the same size; all False for good images)."""
        img = read_image(self.path)
        if self.mask_path is None:
            return img, np.zeros(img.shape[:2], dtype=bool)
        return img, read_mask(self.mask_path, img.shape[:2])


class MVTecDataset:
    def __init__(self, root: Path | str):
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(f"dataset folder {self.root} does not exist")

    def train_images(self) -> list[Path]:
        folder = self.root / "train" / "good"
        if not folder.is_dir():
            raise DataError(f"{self.root} has no train/good folder (expected the MVTec AD layout)")
        paths = list_images(folder)
        if not paths:
            raise DataError(f"{folder} holds no images")
        return paths

    def test_samples(self) -> list[Sample]:
        test = self.root / "test"
        if not test.is_dir():
            raise DataError(f"{self.root} has no test folder (expected the MVTec AD layout)")
        samples: list[Sample] = []
        for defect_dir in sorted(p for p in test.iterdir() if p.is_dir()):
            defect = defect_dir.name
            for path in list_images(defect_dir):
                mask = None
                if defect != "good":
                    mask = self.root / "ground_truth" / defect / f"{path.stem}_mask.png"
                    if not mask.is_file():
                        raise DataError(f"no ground-truth mask for {path} (looked for {mask})")
                samples.append(Sample(path, defect, mask))
        if not samples:
            raise DataError(f"{test} holds no images")
        if not any(s.is_anomalous for s in samples) or all(s.is_anomalous for s in samples):
            raise DataError(f"{test} needs both good and defective images to evaluate")
        return samples


def usable_samples(samples: list[Sample], on_error: str = "skip") -> tuple[list[Sample], list[dict]]:
    """Read every image and mask once: (samples that load, [{"path", "error"}] for
    the rest). `on_error="fail"` raises on the first problem instead of skipping."""
    good, skipped = [], []
    for smp in samples:
        try:
            smp.load()
            good.append(smp)
        except DataError as exc:
            skipped.append({"path": str(smp.path), "error": str(exc)})
    if skipped and on_error == "fail":
        raise DataError(f"{len(skipped)} of {len(samples)} test images cannot be used, first: {skipped[0]['error']}; "
                        "fix or remove them, or pass --on-error skip")
    if not any(s.is_anomalous for s in good) or all(s.is_anomalous for s in good):
        raise DataError(f"after skipping {len(skipped)} unusable images the test set lacks good or defective "
                        f"images; first problem: {skipped[0]['error'] if skipped else 'none'}")
    return good, skipped
