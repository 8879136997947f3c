"""The manifest's schema, checked on every load.

A manifest is data from disk, maybe edited or forged: its types and ranges
are checked here once, so the rest of the program can trust them. NaN and
Infinity are rejected while parsing (they are not JSON), file names must be
plain relative names inside the bundle, checksums are sha256 hex digests.
Sections the core does not read (history, timing, reports) stay free-form.
"""

from __future__ import annotations

import json
import math

import jsonschema

from cfnc_edge.errors import BundleError

# a/b.c, at most one folder deep (engines/...); no "..", no absolute paths, no hidden names
FILE_NAME = r"^[A-Za-z0-9_][A-Za-z0-9_.+-]*(/[A-Za-z0-9_][A-Za-z0-9_.+-]*)?$"
POSITIVE = {"type": "number", "exclusiveMinimum": 0}
# a model input side; the Gaussian of a larger input would not fit in memory
# (positions = (side / 4)^2, each with a d x d factor): larger frames are tiled (--tile)
MAX_SIDE = 2048
SIDE = {"type": "integer", "minimum": 16, "maximum": MAX_SIDE, "multipleOf": 4}

SCHEMA = {
    "type": "object",
    "required": ["format_version", "files", "model"],
    "properties": {
        "format_version": {"type": "integer"},
        "files": {
            "type": "object",
            "propertyNames": {"pattern": FILE_NAME, "not": {"pattern": r"(^|/)\.\.?(/|$)"}},
            "additionalProperties": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
        },
        "model": {
            "type": "object",
            "required": ["backbone", "image_size", "feature_dim"],
            "properties": {
                "backbone": {"type": "string", "minLength": 1},
                # S (a square: every bundle before non-square inputs) or [h, w]
                "image_size": {"oneOf": [SIDE, {"type": "array", "items": SIDE, "minItems": 2, "maxItems": 2}]},
                "feature_dim": {"type": "integer", "minimum": 1},
                "ica": {"type": "boolean"},
                "fca": {"type": "boolean"},
                "projection_seed": {"type": "integer", "minimum": 0},
                "channels": {"type": "array", "items": {"type": "integer", "minimum": 1}},
                "head": {"enum": ["projection", "pooled", "combined"]},
            },
            "additionalProperties": False,
        },
        "gaussian": {
            "type": "object",
            "properties": {"eps": POSITIVE, "positions": {"type": "integer", "minimum": 1},
                           "dim": {"type": "integer", "minimum": 1}},
        },
        "threshold": {"type": "object", "required": ["value"], "properties": {"value": POSITIVE}},
        "scorer": {"type": "object", "properties": {"kind": {"enum": ["gaussian", "knn", "combined"]}}},
        # training on tiles (data/tiling.py): inspection tiles frames the same way
        "tiling": {
            "type": "object",
            "required": ["size", "overlap"],
            "properties": {
                "size": {"oneOf": [{"type": "null"}, {"type": "array", "items": {"type": "integer", "minimum": 1},
                                                     "minItems": 2, "maxItems": 2}]},
                "overlap": {"type": "number", "minimum": 0, "maximum": 0.9},
            },
            "additionalProperties": False,
        },
        "revision": {
            "type": "object",
            "required": ["number"],
            "properties": {"number": {"type": "integer", "minimum": 1},
                           "parent": {"type": ["integer", "null"], "minimum": 1}},
        },
    },
}

_VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def parse(text: str, where: str) -> dict:
    """The manifest text as a validated dict; BundleError naming the field otherwise."""
    try:
        manifest = json.loads(text, parse_constant=_no_constant)
    except ValueError as exc:  # JSONDecodeError is a ValueError too
        raise BundleError(f"{where} is not valid JSON ({exc}); re-create the bundle or restore it "
                          "with `cfnc-edge bundle rollback`") from None
    validate(manifest, where)
    return manifest


def validate(manifest, where: str,
             fix: str = "fix the manifest or re-create the bundle (`cfnc-edge bundle rollback` restores "
                        "the previous version)") -> None:
    """BundleError naming the first bad field (and `fix`) unless `manifest` fits the schema."""
    errors = sorted(_VALIDATOR.iter_errors(manifest), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        e = errors[0]
        raise BundleError(f"{where}: field {_field(e.absolute_path)}: {_describe(e)}; {fix}")


def _field(path) -> str:
    return ".".join(str(p) for p in path) or "(top level)"


def _describe(e: jsonschema.ValidationError) -> str:
    if "propertyNames" in e.schema_path:
        return f"{e.instance!r} is not a plain file name inside the bundle"
    if e.validator == "additionalProperties" and e.validator_value is False:
        return e.message.replace("Additional properties are not allowed", "unknown key(s)")
    return e.message


def dumps(obj, **kwargs) -> str:
    """Strict JSON text (NaN/Infinity become null, never the invalid tokens)."""
    return json.dumps(json_safe(obj), allow_nan=False, **kwargs)


def json_safe(obj):
    """`obj` with every NaN or infinite float replaced by None (null), recursively:
    metrics like PRO are undefined on some subsets, and NaN is not JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj
