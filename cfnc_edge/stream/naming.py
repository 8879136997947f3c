"""Names for outputs: unique per source, safe as one file name.

Source names come from untrusted text (URLs, file names), and two sources
can share one (two cameras' `ok.avi`); every output is named through here so
that nothing is written outside its folder and no two sources share a file.
"""

from __future__ import annotations

import hashlib
import re

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_MAX = 80


def safe_name(text: str) -> str:
    """One plain file name (no separators, no leading dot, no '..') for `text`.

    Changed or shortened names get a short hash of the original, so that two
    different texts do not end up with the same name.
    """
    name = _UNSAFE.sub("_", text).lstrip("._-")[:_MAX]
    if name != text or not name:
        name = f"{name}_{hashlib.sha1(text.encode()).hexdigest()[:8]}".lstrip("_")
    return name


def unique(names: list[str], sep: str = "-") -> list[str]:
    """`names` with repeats numbered (ok, ok-2, ok-3), in order."""
    taken: set[str] = set()
    out = []
    for n in names:
        candidate, k = n, 1
        while candidate in taken:
            k += 1
            candidate = f"{n}{sep}{k}"
        taken.add(candidate)
        out.append(candidate)
    return out
