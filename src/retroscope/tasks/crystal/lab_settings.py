"""Settings of the laboratory-image preprocessing (:func:`.lab.preprocess_lab_image`): the keys
with their kinds and defaults, :func:`validate_lab_settings` checking them and filling in the
defaults, and :func:`load_lab_settings` reading one lab's settings from a TOML/JSON(/YAML) file.
What each key does is documented at :func:`.lab.preprocess_lab_image`.
"""

from __future__ import annotations

import json
import math
import tomllib
from pathlib import Path

import numpy as np

# keys of a lab settings file/dict: name -> (kind, default); kinds are checked by
# validate_lab_settings. ``None`` default = "not set" (see preprocess_lab_image).
LAB_SETTINGS: dict[str, tuple[str, object]] = {
    "lab": ("str", None),
    "description": ("str", None),
    "notes": ("str", None),
    "background": ("background", "border"),
    "border_px": ("int>=1", 4),
    "median5": ("bool", True),
    "pixel_um": ("float>0", None),
    "trap_scale": ("float>0", 1.0),
    "antialias": ("bool", True),
    "interpolation_order": ("order", 1),
    "rotation_deg": ("float", None),
    "auto_rotate": ("bool", True),
    "auto_rotate_min_aspect": ("float>=1", 1.1),
    "threshold": ("threshold", "otsu"),
    "ellipse": ("bool", True),
    "ellipse_margin": ("float>0", 1.1),
    "enhance_outer": ("float>=0", 0.0),
    "recentre": ("bool", True),
    "brightness_density": ("float>0", None),
}


def validate_lab_settings(settings: dict | None, source: str = "settings") -> dict:
    """Check the keys and value types of lab settings; return a copy with defaults filled in.

    Raises ValueError naming ``source`` (a file name, or "settings") and the offending key.
    """
    if settings is None:
        settings = {}
    if not isinstance(settings, dict):
        raise ValueError(f"{source}: lab settings must be a table/mapping, "
                         f"got {type(settings).__name__}")
    unknown = sorted(set(settings) - set(LAB_SETTINGS))
    if unknown:
        raise ValueError(f"{source}: unknown key {unknown[0]!r} "
                         f"(known: {', '.join(sorted(LAB_SETTINGS))})")
    out = {k: default for k, (_, default) in LAB_SETTINGS.items()}
    for key, value in settings.items():
        out[key] = _check(key, value, LAB_SETTINGS[key][0], source)
    return out


def _is_number(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def _check(key: str, value, kind: str, source: str):
    def bad(expected: str):
        return ValueError(f"{source}: key {key!r} must be {expected}, got {value!r}")

    if value is None:  # JSON null / YAML ~ = "not set"
        return LAB_SETTINGS[key][1]
    if kind == "str":
        if not isinstance(value, str):
            raise bad("a string")
        return value
    if kind == "bool":
        if not isinstance(value, (bool, np.bool_)):
            raise bad("true or false")
        return bool(value)
    if kind == "int>=1":
        if not (_is_number(value) and float(value) == int(value) and int(value) >= 1):
            raise bad("an integer >= 1")
        return int(value)
    if kind == "order":
        if not (_is_number(value) and float(value) == int(value) and 0 <= int(value) <= 5):
            raise bad("an integer spline order 0-5")
        return int(value)
    if kind.startswith("float"):
        if not (_is_number(value) and math.isfinite(float(value))):
            raise bad("a finite number")
        v = float(value)
        if kind == "float>0" and not v > 0:
            raise bad("a number > 0")
        if kind == "float>=0" and not v >= 0:
            raise bad("a number >= 0")
        if kind == "float>=1" and not v >= 1:
            raise bad("a number >= 1")
        return v
    if kind == "background":
        if isinstance(value, str):
            if value.lower() not in ("border", "none"):
                raise bad('a number of counts >= 0, "border" or "none"')
            return value.lower()
        if not (_is_number(value) and math.isfinite(float(value)) and float(value) >= 0):
            raise bad('a number of counts >= 0, "border" or "none"')
        return float(value)
    if kind == "threshold":
        if isinstance(value, str):
            if value.lower() != "otsu":
                raise bad('"otsu" or a fraction in (0, 1)')
            return "otsu"
        if not (_is_number(value) and 0 < float(value) < 1):
            raise bad('"otsu" or a fraction in (0, 1)')
        return float(value)
    raise AssertionError(kind)  # pragma: no cover


def load_lab_settings(path: str | Path) -> dict:
    """Read one lab's preprocessing settings (.toml, .json, or .yaml/.yml with PyYAML).

    Returns the dict as written (validated; defaults are *not* filled in, so it can be passed
    on as ``settings``). Raises ValueError naming the file (and the bad key, if any).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".json", ".yaml", ".yml"):
        raise ValueError(f"{path}: lab settings must be a .toml, .json or .yaml file")
    try:
        text = path.read_text()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read lab settings ({exc})") from exc
    if suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise ValueError(f"{path}: YAML settings need PyYAML (pip install pyyaml); "
                             "or write the settings as TOML or JSON") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ValueError(f"{path}: cannot parse lab settings ({exc})") from exc
        data = {} if data is None else data
    else:
        try:
            data = tomllib.loads(text) if suffix == ".toml" else json.loads(text)
        except ValueError as exc:  # TOMLDecodeError, JSONDecodeError
            raise ValueError(f"{path}: cannot parse lab settings ({exc})") from exc
    validate_lab_settings(data, source=str(path))
    return dict(data)
