"""The candidates `--recipe auto` searches, in the order it tries them, with their relative cost.

A candidate is a feature configuration: backbone, input short side, and
whether the image-level alignment (ICA, fitted from the good images without
training) turns the parts first. Every scorer is scored on each candidate's
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
        return {**asdict(self), "name": self.name}


BASELINE = Candidate()


def search_order(posed: bool) -> list[Candidate]:
    """Every candidate, most promising first; ICA variants only for parts found posed."""
    sizes = (224, 320, 448)
    order = [BASELINE]
    if posed:
        order += [Candidate(ica=True)]
    order += [Candidate(short_side=s, ica=posed) for s in sizes[1:]]
    order += [Candidate(b, 224, posed) for b in ("efficientnet-lite2", "efficientnet-lite1")]
    order += [Candidate(b, 320, posed) for b in ("efficientnet-lite2", "efficientnet-lite1")]
    if posed:  # the unaligned variants of the larger inputs, last
        order += [Candidate(short_side=s) for s in sizes[1:]]
    return list(dict.fromkeys(order))
