"""The `--recipe auto` search as a table: every candidate's synthetic scores and the choice."""

from __future__ import annotations


def _fmt(v) -> str:
    return "" if v is None else f"{100 * v:.1f}"


def selection_lines(selection: dict) -> list[str]:
    """Markdown lines for the manifest's `selection` record (empty without one)."""
    if not selection:
        return []
    c = selection["candidate"]
    weight = f" (Gaussian weight {selection['weight']:g})" if selection["scorer"] == "combined" else ""
    lines = ["## How the model was chosen (`--recipe auto`)", "",
             f"Chosen: **{c['name']}, {selection['scorer']} scorer{weight}**, by the rule: {selection['rule']}. "
             f"Scored on {selection['images']} good images and one synthetic defect on each "
             f"({', '.join(selection.get('defect_families', []))}), every image scored by models that did not "
             f"see it; search {selection['seconds']:.0f} s (budget {selection['budget']:g}x the first "
             f"candidate)." + ("" if selection.get("pose_spread_degrees") is None else
                               f" The parts' pose spread found by the image alignment: "
                               f"{selection['pose_spread_degrees']:.1f} degrees."), "",
             "| candidate | scorer | fusion weight | synthetic image AUROC | synthetic PRO | seconds |",
             "|---|---|---|---|---|---|"]
    for r in sorted(selection["rows"], key=lambda r: -r["synthetic_image_auroc"]):
        mark = "**" if (r["candidate"]["name"], r["scorer"], r.get("weight")) == (
            c["name"], selection["scorer"], selection["weight"] if selection["scorer"] == "combined" else None) else ""
        lines.append(f"| {mark}{r['candidate']['name']}{mark} | {r['scorer']} | "
                     f"{'' if r.get('weight') is None else r['weight']} | {_fmt(r['synthetic_image_auroc'])} | "
                     f"{_fmt(r['synthetic_pro'])} | {r['seconds']:.0f} |")
    if selection["skipped"]:
        lines += ["", "Not scored within the budget: " + "; ".join(f"{s['name']} ({s['why']})"
                                                                  for s in selection["skipped"]) + "."]
    return lines + [""]
