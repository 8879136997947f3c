"""The package's structure: imports point one way, down the pipeline.

Every module is parsed (function-local imports included, since a lazy import
is still a dependency) and each folder has a rank; a module may import from
its own folder or from a lower rank, never upwards or sideways, and the
module graph has no cycle.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.blocked_imports import blocking

PACKAGE = Path(__file__).resolve().parents[1] / "cfnc_edge"

# Low to high: foundations, then the pipeline's stages, then the surfaces.
RANK = {
    "": 0, "errors": 0,
    "bundle": 1, "images": 1, "resources": 1,
    "data": 2,
    "model": 3,
    "scoring": 4,
    "runtime": 5,
    "report": 6,
    "deploy": 7, "stream": 7, "selection": 7,
    "serve": 8,
    "api": 9,
    "cli": 10, "__main__": 11,
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "cfnc_edge":
                found |= {f"cfnc_edge.{a.name}" for a in node.names}
            elif node.module.startswith("cfnc_edge."):
                found.add(node.module)
        elif isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{path}: relative import; the package uses absolute imports")
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("cfnc_edge.")}
    return found


def _graph() -> dict[str, set[str]]:
    mods = {_module_name(p): p for p in PACKAGE.rglob("*.py") if "kernels" not in p.parts}
    graph = {}
    for name, path in mods.items():
        deps = set()
        for target in _imports(path):
            # `from cfnc_edge.x import y` where y is a module: depend on the module
            while target not in mods and "." in target:
                target = target.rsplit(".", 1)[0]
            if target != name and target in mods:
                deps.add(target)
        graph[name] = deps
    return graph


def _folder(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_every_folder_has_a_rank():
    assert {_folder(m) for m in _graph()} <= set(RANK)


def test_no_upward_or_sideways_imports():
    bad = []
    for mod, deps in _graph().items():
        for dep in deps:
            a, b = _folder(mod), _folder(dep)
            if a != b and not RANK[b] < RANK[a]:
                bad.append(f"{mod} -> {dep} ({a} rank {RANK[a]}, {b} rank {RANK[b]})")
    assert not bad, "imports against the pipeline's direction:\n" + "\n".join(sorted(bad))


def test_no_import_cycles():
    graph, state, cycles = _graph(), {}, []

    def visit(node, stack):
        state[node] = "open"
        for dep in sorted(graph[node]):
            if state.get(dep) == "open":
                cycles.append(" -> ".join(stack[stack.index(dep):] + [dep]))
            elif dep not in state:
                visit(dep, stack + [dep])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_the_checker_catches_an_upward_import(tmp_path, monkeypatch):
    """The check above can fail: an upward import planted in a copy is found."""
    import shutil

    copy = tmp_path / "cfnc_edge"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("kernels", "__pycache__"))
    (copy / "images.py").write_text((copy / "images.py").read_text() + "\nfrom cfnc_edge.api import train\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", copy)
    with pytest.raises(AssertionError, match="cfnc_edge.images -> cfnc_edge.api"):
        test_no_upward_or_sideways_imports()


def test_every_module_imports():
    import importlib

    for mod in sorted(_graph()):
        if mod != "cfnc_edge.__main__":
            importlib.import_module(mod)


BLOCK_TORCH_AND_ONNX = blocking("torch", "torchvision", "onnx", "efficientnet_lite_pytorch")


def test_onnxruntime_inference_runs_without_torch_or_onnx(exported, tiny_data):
    bundle, _ = exported
    frames = sorted((tiny_data / "test" / "stain").glob("*.png"))
    code = BLOCK_TORCH_AND_ONNX + f"""
from cfnc_edge.api import InspectOptions, Inspector, infer_paths
from cfnc_edge.images import read_image
from pathlib import Path
auto = Inspector({str(bundle.path)!r}, "auto")
assert auto.backend.name in ("onnxruntime", "openvino"), auto.backend.name  # both read the exported graph
insp = Inspector({str(bundle.path)!r}, "onnxruntime")
r = insp([read_image(Path({str(frames[0])!r}))])[0]
assert r.score > 0 and r.anomalous is not None
lines = list(infer_paths([Path({str(frames[0].parent)!r})], {str(bundle.path)!r}, inspection=InspectOptions(backend="onnxruntime")))
assert len(lines) == {len(frames)}
assert not any(m.split('.')[0] in ('torch', 'onnx') for m in sys.modules), [m for m in sys.modules if 'torch' in m]
print("ok")
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stderr
