"""MkDocs hook: results tables from the committed JSON files, and the
results files themselves in the site.

A fenced block in any page becomes a Markdown table:

    ```results
    file: combined-magnetic-tile.json      # under benchmarks/results/
    key: end_to_end                        # optional: a list inside a JSON object
    columns: [set, variant, image_auroc:%, pro:%, p50_ms:.1f]   # optional: every scalar column
    where: {set: ["50", full]}             # optional: keep rows whose value is listed
    labels: {image_auroc: image AUROC}     # optional: column headers
    ```

so a table cannot drift from the measurement it shows: a file, key or column
that does not exist fails the build (`mkdocs build --strict` in .ci/run).
The tables are generated, never typed: re-running a benchmark updates them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"
# Where the results folders appear in the site (docs/results/files/...), so that
# pages link to the Markdown reports as pages and to the JSON as files.
SITE_DIR = "results/files"
COPIED = {RESULTS: SITE_DIR, ROOT / "calibration": f"{SITE_DIR}/calibration"}
COPIED_SUFFIXES = {".md", ".json", ".csv", ".txt", ".png"}  # .png: pictures the reports show

BLOCK = re.compile(r"^```results[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)


def on_files(files, config):
    """Add the results folders to the site: the .md reports become pages (so
    their tables render and their links are checked), the rest plain files."""
    for source, target in COPIED.items():
        for path in sorted(source.rglob("*")):
            if path.is_file() and path.suffix in COPIED_SUFFIXES:
                uri = f"{target}/{path.relative_to(source).as_posix()}"
                files.append(File.generated(config, uri, abs_src_path=str(path)))
    return files


def on_page_markdown(markdown, page, config, files):
    return BLOCK.sub(lambda m: _table(m.group(1), page.file.src_uri), markdown)


def _table(spec_text: str, page: str) -> str:
    try:
        spec = yaml.safe_load(spec_text) or {}
    except yaml.YAMLError as exc:
        raise PluginError(f"{page}: a results block is not valid YAML: {exc}") from exc
    unknown = set(spec) - {"file", "key", "columns", "where", "labels"}
    if "file" not in spec or unknown:
        raise PluginError(f"{page}: a results block needs `file:` and takes only key, columns, where, labels"
                          f"{f' (not {sorted(unknown)})' if unknown else ''}")
    rows = _rows(spec["file"], spec.get("key"), page)
    where = {k: [str(v) for v in (vs if isinstance(vs, list) else [vs])] for k, vs in (spec.get("where") or {}).items()}
    rows = [r for r in rows if all(str(_get(r, k)) in vs for k, vs in where.items())]
    if not rows:
        raise PluginError(f"{page}: no row of {spec['file']} matches where={where}")
    columns = spec.get("columns") or _scalar_columns(rows)
    if isinstance(columns, str):
        columns = [c.strip() for c in columns.split(",")]
    labels = spec.get("labels") or {}
    names, formats = zip(*(_split(str(c)) for c in columns))
    for name in names:
        if all(_get(r, name) is None for r in rows):
            raise PluginError(f"{page}: column {name!r} is empty or absent in every selected row of {spec['file']}")
    head = [labels.get(n, n.replace("_", " ")) for n in names]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(_cell(_get(r, n), f) for n, f in zip(names, formats)) + " |" for r in rows]
    source = f"{SITE_DIR}/{spec['file']}"
    link = _relative(source, page)
    report = Path(spec["file"]).with_suffix(".md")
    also = f", report [{report.name}]({_relative(f'{SITE_DIR}/{report.as_posix()}', page)})" \
        if (RESULTS / report).is_file() else ""
    lines.append(f"\n<small>Generated from [{spec['file']}]({link}){also}.</small>\n")
    return "\n".join(lines)


def _rows(name: str, key: str | None, page: str) -> list[dict]:
    path = RESULTS / name
    if not path.is_file():
        raise PluginError(f"{page}: results file benchmarks/results/{name} does not exist")
    data = json.loads(path.read_text())
    if key is not None:
        if not isinstance(data, dict) or key not in data:
            raise PluginError(f"{page}: {name} has no key {key!r}")
        data = data[key]
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise PluginError(f"{page}: {name}{f'[{key}]' if key else ''} is not a list of row objects "
                          f"(name a list with `key:`)")
    return data


def _get(row: dict, name: str):
    """`a.b` reads row["a"]["b"]: nested results (per defect, at frame size)."""
    for part in name.split("."):
        if not isinstance(row, dict):
            return None
        row = row.get(part)
    return row


def _scalar_columns(rows: list[dict]) -> list[str]:
    seen: dict[str, None] = {}
    for r in rows:
        seen.update({k: None for k, v in r.items() if not isinstance(v, (dict, list))})
    return list(seen)


def _split(column: str) -> tuple[str, str]:
    name, _, fmt = column.partition(":")
    return name.strip(), fmt.strip()


def _cell(value, fmt: str) -> str:
    """`%`: a fraction shown as a percentage with one decimal (AUROC 0.834 -> 83.4);
    any other format is Python's (`.2f`); without one, floats keep 3 significant digits."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        if fmt == "%":
            return f"{100 * value:.1f}"
        if fmt:
            return format(value, fmt)
        if isinstance(value, float):
            return f"{value:.0f}" if abs(value) >= 1000 else f"{value:.3g}"
        return str(value)
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return text.replace("|", "\\|").replace("\n", " ")


def _relative(target: str, page: str) -> str:
    """A link from page `page` (a docs-relative path) to `target`, which MkDocs checks."""
    depth = page.count("/")
    return "../" * depth + target

