"""The candidates `--recipe auto` searches, in the order it tries them, with their relative cost.

A candidate is a feature configuration: backbone, input short side, and
whether the image-level alignment (ICA, fitted from the good images without
training) turns the parts first (not searched: ICA_SEARCHED says why). Every scorer is scored on each candidate's
features at no extra forward pass. The order puts first what measured most
often mattered on unseen data: the scorer (free), then alignment for posed
parts, then the input size for small defects, then larger backbones (not
consistently better on magnetic-tile: benchmarks/results/combined-magnetic-tile.md).
Trained candidates (ICA/FCA + dense training) are not searched: training is
minutes on a CPU, and measured it lost to its own untrained baseline
(benchmarks/results/accuracy-magnetic-tile.md); `--recipe paper` runs it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

# relative compute per pixel of each backbone (FLOPs at equal input size, Lite0 = 1)
BACKBONE_COST = {"efficientnet-lite0": 1.0, "efficientnet-lite1": 1.4, "efficientnet-lite2": 2.2}
# Above this short side the per-position Gaussian is not fitted: its fold sums
# grow with positions x d^2 (448 px: 12544 positions, 1 GiB per fold) and its
# factor alone would be 250 MB; the bank's memory is capped whatever the size.
GAUSSIAN_MAX_SIDE = 320


@dataclass(frozen=True)
class Candidate:
    backbone: str = "efficientnet-lite0"
    short_side: int = 224
    ica: bool = False

    @property
    def name(self) -> str:
        return f"{self.backbone.removeprefix('efficientnet-')}@{self.short_side}{'+ica' if self.ica else ''}"

    @property
    def cost(self) -> float:
        """Time relative to the baseline (Lite0, 224 px): features and scoring grow with pixels."""
        pixels = (self.short_side / 224) ** 2
        return pixels * (0.5 + 0.5 * BACKBONE_COST.get(self.backbone, 2.0))  # unlisted: a guess

    @property
    def gaussian(self) -> bool:
        return self.short_side <= GAUSSIAN_MAX_SIDE

    def to_dict(self) -> dict:
        return {**asdict(self), "name": self.name, "cost": self.cost}


BASELINE = Candidate()


# Why ICA is not searched. Its template search turns posed parts (mvtec-screw,
# benchmarks/results/ica-alignment.md) and scores better on synthetic defects,
# but on the real test set it lowered the image AUROC of both the bank and the
# Gaussian, and the aligned bank flagged many times the good parts asked for
# (benchmarks/results/selection-study.md): a bank of patches
# in one pose is brittle wherever the alignment of a new part fails, and the
# synthetic defects, drawn on training images the template was fitted on, cannot
# show it. So the search would pick it for the wrong reason; `--ica` under
# `--recipe pretrained` or `paper` still turns the parts.
ICA_SEARCHED = False


def search_order(posed: bool) -> list[Candidate]:
    """Every candidate, most promising first (ICA variants for posed parts only where ICA_SEARCHED)."""
    aligned = posed and ICA_SEARCHED
    order = [BASELINE, *([Candidate(ica=True)] if aligned else [])]
    order += [Candidate(short_side=s, ica=aligned) for s in (320, 448)]
    order += [Candidate(b, 224, aligned) for b in ("efficientnet-lite2", "efficientnet-lite1")]
    order += [Candidate(b, 320, aligned) for b in ("efficientnet-lite2", "efficientnet-lite1")]
    return list(dict.fromkeys(order))
