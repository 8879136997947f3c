"""The docs site's hooks (docs/hooks/): results tables generated from JSON, and
the API page generated from cfnc_edge.api's tables. The strict site build in
.ci/run runs them on the real files; these tests pin what a newcomer adding a
results file relies on (architecture page, "Adding a results table")."""

import importlib.util
import json
from pathlib import Path

import pytest

pytest.importorskip("mkdocs", reason="the docs extra (pip install -e '.[docs]') is not installed")
from mkdocs.exceptions import PluginError  # noqa: E402

HOOKS = Path(__file__).resolve().parents[1] / "docs" / "hooks"


def load(name):
    spec = importlib.util.spec_from_file_location(f"docs_hook_{name}", HOOKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def results(tmp_path, monkeypatch):
    hook = load("results")
    monkeypatch.setattr(hook, "RESULTS", tmp_path)
    return hook


def page(block: str) -> str:
    return f"# A page\n\n```results\n{block}\n```\n\ntext after\n"


def render(hook, block: str, src_uri: str = "results.md") -> str:
    class Page:
        class file:
            pass
    Page.file.src_uri = src_uri
    return hook.on_page_markdown(page(block), Page, None, None)


def test_a_new_list_of_rows_renders_with_every_scalar_column(results, tmp_path):
    rows = [{"backbone": "lite0", "image_auroc": 0.8349, "per_defect": {"crack": 0.7}, "runs": [1, 2]},
            {"backbone": "lite2", "image_auroc": 0.86, "note": "a|b"}]
    (tmp_path / "model-selection.json").write_text(json.dumps(rows))
    out = render(results, "file: model-selection.json")
    lines = out.splitlines()
    assert "| backbone | image auroc | note |" in lines  # nested dicts and lists are not columns
    assert "| lite0 | 0.835 |  |" in lines
    assert "| lite2 | 0.86 | a\\|b |" in lines  # a pipe in a value does not split the cell
    assert "[model-selection.json](results/files/model-selection.json)" in out
    assert "```" not in out and out.rstrip().endswith("text after")


def test_columns_formats_where_key_and_labels(results, tmp_path):
    data = {"end_to_end": [{"set": "50", "pro": 0.7168, "ms": 5.9725, "ok": True, "x": None, "d": {"crack": 0.25}},
                           {"set": "full", "pro": 0.73, "ms": 26.0, "ok": False, "x": 3, "d": {"crack": 0.5}},
                           {"set": "other", "pro": 0.1, "ms": 1.0, "ok": True, "x": 1, "d": {}}]}
    (tmp_path / "gpu").mkdir()
    (tmp_path / "gpu" / "bench.json").write_text(json.dumps(data))
    (tmp_path / "gpu" / "bench.md").write_text("# report\n")
    out = render(results, "file: gpu/bench.json\nkey: end_to_end\ncolumns: [set, pro:%, ms:.2f, ok, x, d.crack:%]\n"
                          "where: {set: ['50', full]}\nlabels: {pro: PRO}", src_uri="deep/page.md")
    lines = out.splitlines()
    assert lines[2] == "| set | PRO | ms | ok | x | d.crack |"
    assert "| 50 | 71.7 | 5.97 | yes |  | 25.0 |" in lines
    assert "| full | 73.0 | 26.00 | no | 3 | 50.0 |" in lines
    assert not any(line.startswith("| other") for line in lines)
    # links are relative to the page, and name the report beside the JSON file
    assert "[gpu/bench.json](../results/files/gpu/bench.json)" in out
    assert "[bench.md](../results/files/gpu/bench.md)" in out


@pytest.mark.parametrize("block, message", [
    ("file: absent.json", "does not exist"),
    ("file: rows.json\ncolumns: [set, typo]", "column 'typo'"),
    ("file: rows.json\nwhere: {set: nothing}", "no row"),
    ("file: rows.json\nkey: rows", "has no key"),
    ("file: rows.json\nsort: set", "takes only"),
    ("columns: [set]", "needs `file:`"),
    ("file: [unclosed", "not valid YAML"),
])
def test_a_table_that_cannot_be_made_fails_the_build(results, tmp_path, block, message):
    (tmp_path / "rows.json").write_text(json.dumps([{"set": "50"}]))
    with pytest.raises(PluginError, match=message):
        render(results, block)


def test_a_results_object_without_key_is_refused(results, tmp_path):
    (tmp_path / "obj.json").write_text(json.dumps({"rows": [{"a": 1}]}))
    with pytest.raises(PluginError, match="not a list of row objects"):
        render(results, "file: obj.json")


def test_the_api_page_names_every_exported_name_where_griffe_finds_it():
    hook = load("api_reference")
    where, classes = hook._tables()
    out = hook.on_page_markdown("intro\n<!-- api-reference -->\n", None, None, None)
    for name, module in where.items():
        assert f"::: cfnc_edge.api.{module}.{name}\n" in out
    for name, module in classes.items():
        assert f"{hook._griffe_path(module)}.{name}\n" in out
    # runtime/ has no __init__.py (a namespace package): found from cfnc_edge/ itself
    assert hook._griffe_path("cfnc_edge.runtime.inspector") == "runtime.inspector"
    assert hook._griffe_path("cfnc_edge.stream.sinks.mqtt") == "stream.sinks.mqtt"
    assert hook._griffe_path("cfnc_edge.bundle") == "cfnc_edge.bundle"
    assert "<!-- api-reference -->" not in out
