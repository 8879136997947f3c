"""The selection rule and the candidate order."""

import pytest

from cfnc_edge.selection.candidates import BASELINE, Candidate, search_order
from cfnc_edge.selection.choose import choose


def _row(name, scorer, auroc, pro, cost, weight=None):
    r = {"candidate": {"name": name, "cost": cost}, "scorer": scorer, "synthetic_image_auroc": auroc,
         "synthetic_pro": pro}
    return r if weight is None else {**r, "weight": weight}


def test_highest_auroc_wins_outside_the_tie():
    rows = [_row("a", "gaussian", 0.90, 0.99, 1), _row("b", "knn", 0.96, 0.50, 4)]
    assert choose(rows)["candidate"]["name"] == "b"


def test_within_the_auroc_tie_pro_decides_then_cost():
    rows = [_row("a", "gaussian", 0.960, 0.80, 1), _row("b", "knn", 0.963, 0.90, 4),
            _row("c", "combined", 0.962, 0.895, 2, 0.5)]
    assert choose(rows)["candidate"]["name"] == "c"  # b's PRO lead (0.5 points) is a tie; c is cheaper
    rows.append(_row("d", "knn", 0.958, 0.95, 9))
    assert choose(rows)["candidate"]["name"] == "d"  # within the AUROC tie, 5 points more PRO


def test_same_cost_prefers_the_cheaper_scorer_and_the_even_fusion():
    rows = [_row("a", "combined", 0.9, 0.9, 1, 0.25), _row("a", "combined", 0.9, 0.9, 1, 0.5),
            _row("a", "knn", 0.9, 0.9, 1)]
    assert choose(rows)["scorer"] == "knn"
    assert choose(rows[:2])["weight"] == 0.5
    with pytest.raises(ValueError):
        choose([])


def test_search_order_starts_at_the_baseline_and_aligns_only_posed_parts(monkeypatch):
    from cfnc_edge.selection import candidates

    flat, posed = search_order(False), search_order(True)
    assert flat[0] == BASELINE == posed[0] and not any(c.ica for c in flat + posed)  # ICA_SEARCHED is off
    monkeypatch.setattr(candidates, "ICA_SEARCHED", True)
    posed = search_order(True)
    assert posed[1] == Candidate(ica=True) and len(set(posed)) == len(posed) and not any(c.ica for c in flat)
    assert {c.short_side for c in flat} == {224, 320, 448}
    assert all(a.cost <= b.cost for a, b in zip(flat[:3], flat[1:3]))  # sizes grow in cost
    assert not Candidate(short_side=448).gaussian  # its fold sums would not fit (candidates.py)
