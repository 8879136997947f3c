"""The one Python surface of cfnc-edge; the CLI is a thin layer over it.

    from cfnc_edge.api import train, evaluate, infer_paths, export, stream, compare, Inspector

Names are imported on first use, so `import cfnc_edge.api` stays light and an
edge device without torch can still use the inspection and streaming side.
"""

from __future__ import annotations

import importlib

_WHERE = {
    "train": "training", "refit": "training", "set_threshold": "training", "run_demo": "training", "recipe": "training",
    "infer_paths": "inspection", "expand_inputs": "inspection", "evaluate": "inspection",
    "InspectOptions": "inspection",
    "export": "deployment", "calibrate": "deployment", "build_engine": "deployment", "bench": "deployment",
    "doctor": "deployment", "set_factor_precision": "deployment",
    "stream": "streaming", "stream_sinks": "streaming", "review": "streaming",
    "serve": "serving", "connect": "serving", "parse_bundles": "serving",
    "verify_bundle": "bundles", "rollback_bundle": "bundles", "sign_bundle": "bundles", "make_keys": "bundles",
    "compare": "comparison",
}
_CLASSES = {"Inspector": "cfnc_edge.runtime.inspector", "Bundle": "cfnc_edge.bundle",
            "ModelConfig": "cfnc_edge.model.coarse_to_fine",
            "Tiling": "cfnc_edge.data.tiling", "TrainConfig": "cfnc_edge.model.train",
            "StreamOptions": "cfnc_edge.stream.runner", "StreamRunner": "cfnc_edge.stream.runner",
            "FrameSource": "cfnc_edge.stream.sources", "IterableSource": "cfnc_edge.stream.sources",
            "MqttOptions": "cfnc_edge.stream.sinks.mqtt",
            "ServeOptions": "cfnc_edge.serve.server", "RemoteInspector": "cfnc_edge.serve.client"}

__all__ = sorted([*_WHERE, *_CLASSES])


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    if name in _CLASSES:
        return getattr(importlib.import_module(_CLASSES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
