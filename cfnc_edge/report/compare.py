"""Which scorer to deploy: accuracy and latency side by side, and a rule that picks one.

The rule, in order: the higher image AUROC (the verdict a user acts on)
unless within MARGIN points; then the higher PRO (where the map points);
then the lower latency on this machine. A difference below MARGIN is
inside the spread of a test set of a few hundred images, so it does not
decide alone.
"""

from __future__ import annotations

MARGIN = 0.005  # half an AUROC/PRO point


CRITERIA = (("image_auroc", 1, "image AUROC"), ("pro", 1, "PRO"), ("p50_ms", -1, "latency"))


def _decide(a: dict, b: dict) -> tuple[dict, str]:
    """The better of two rows by the rule above, and why."""
    for key, sign, label in CRITERIA:
        x, y = a[key], b[key]
        if x != x or y != y:  # NaN (no PRO without defect masks): not a criterion
            continue
        gap = sign * (x - y)
        if key == "p50_ms" or abs(gap) > MARGIN:
            win, lose = (a, b) if gap > 0 else (b, a)
            note = "" if key == "image_auroc" else " (accuracy within half a point)"
            return win, f"{label} {_fmt(win[key], key)} vs {_fmt(lose[key], key)}{note}"
    return a, "tie"


def recommend(rows: list[dict]) -> tuple[dict, str]:
    """rows: {"scorer", "image_auroc", "pro", "p50_ms", ...} -> (chosen row, reason)."""
    best, reason = rows[0], "only candidate"
    for r in rows[1:]:
        best, reason = _decide(best, r)
    return best, reason


def _fmt(v: float, key: str) -> str:
    return f"{v:.1f} ms" if key == "p50_ms" else f"{100 * v:.1f}"


def render(rows: list[dict], chosen: dict, reason: str, machine: str) -> str:
    lines = ["# Scorer comparison", "", f"Measured on {machine}.", "",
             "| scorer | image AUROC | pixel AUROC | PRO | good flagged % | defective flagged % | "
             "p50 ms (batch 1, torch) | scorer size MB | bundle |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['scorer']} | {_pct(r['image_auroc'])} | {_pct(r['pixel_auroc'])} | {_pct(r['pro'])} | "
                     f"{_pct(r['good_flagged'])} | {_pct(r['defects_flagged'])} | {r['p50_ms']:.1f} | "
                     f"{r['scorer_mb']:.1f} | `{r['bundle']}` |")
    lines += ["", f"**Deploy `{chosen['scorer']}`** ({reason}): `{chosen['bundle']}`."]
    return "\n".join(lines) + "\n"


def _pct(v) -> str:
    return "n/a" if v is None or v != v else f"{100 * v:.1f}"
