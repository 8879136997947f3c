"""MkDocs hook: the Python API page, generated from `cfnc_edge.api`'s own
tables of names (`_WHERE`, `_CLASSES`), so a name added to the API appears in
the docs without editing them. mkdocstrings then renders each name from its
docstring and signature.

The tables are read with `ast`, not imported: the docs build needs neither
the package's dependencies nor the right copy of it on sys.path.
"""

from __future__ import annotations

import ast
from pathlib import Path

from mkdocs.exceptions import PluginError

ROOT = Path(__file__).resolve().parents[2]
API_INIT = ROOT / "cfnc_edge" / "api" / "__init__.py"
MARKER = "<!-- api-reference -->"


def on_page_markdown(markdown, page, config, files):
    return markdown.replace(MARKER, _reference()) if MARKER in markdown else markdown


def _tables() -> tuple[dict[str, str], dict[str, str]]:
    found = {}
    for node in ast.parse(API_INIT.read_text()).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            if node.targets[0].id in ("_WHERE", "_CLASSES"):
                found[node.targets[0].id] = ast.literal_eval(node.value)
    if set(found) != {"_WHERE", "_CLASSES"}:
        raise PluginError(f"{API_INIT}: the _WHERE and _CLASSES tables the API page is built from are gone")
    return found["_WHERE"], found["_CLASSES"]


def _reference() -> str:
    """One section per API module (its docstring, then each of its public names
    in the table's order), then the classes the API re-exports."""
    where, classes = _tables()
    modules: dict[str, list[str]] = {}
    for name, module in where.items():
        modules.setdefault(module, []).append(name)
    out = []
    for module, names in modules.items():
        out.append(f"## `api.{module}`\n\n::: cfnc_edge.api.{module}\n    options:\n      members: false\n"
                   "      show_root_heading: false\n      show_root_toc_entry: false\n")
        out += [f"::: cfnc_edge.api.{module}.{name}\n" for name in names]
    out.append("## Classes\n")
    out += [f"::: {_griffe_path(module)}.{name}\n" for name, module in classes.items()]
    return "\n".join(out)


def _griffe_path(module: str) -> str:
    """The dotted path Griffe finds `module` under. Griffe skips folders without
    __init__.py (namespace packages) inside a regular package, and several of
    cfnc_edge's are such folders; mkdocs.yml therefore also searches cfnc_edge/
    itself, where such a folder is a top-level namespace package Griffe reads:
    cfnc_edge.runtime.inspector is found as runtime.inspector."""
    parts = module.split(".")
    for i in range(1, len(parts)):
        if not (ROOT.joinpath(*parts[:i + 1]) / "__init__.py").is_file() and ROOT.joinpath(*parts[:i + 1]).is_dir():
            return ".".join(parts[i:])
    return module
