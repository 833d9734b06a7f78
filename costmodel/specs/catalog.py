"""The built-in catalog: TOML files under ``specs/data``, each number with its source."""

from __future__ import annotations

import functools
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import SpecError, unknown_name
from .hardware import HardwareSpec
from .hf_config import model_from_hf_config
from .model import ModelSpec

__all__ = ["load_model", "load_hardware", "list_models", "list_hardware"]

_DATA = resources.files(__package__) / "data"


def _names(kind: str) -> list[str]:
    return list(_listing(kind))


@functools.cache
def _listing(kind: str) -> tuple[str, ...]:
    """The catalog's file names, read once (package data does not change while it runs)."""
    return tuple(sorted(p.name[:-5] for p in (_DATA / kind).iterdir() if p.name.endswith(".toml")))


def list_models() -> list[str]:
    """Names of the built-in models."""
    return _names("models")


def list_hardware() -> list[str]:
    """Names of the built-in chips."""
    return _names("hardware")


def _read(kind: str, name: str) -> dict[str, Any]:
    try:
        return tomllib.loads((_DATA / kind / f"{name}.toml").read_text())
    except tomllib.TOMLDecodeError as e:
        raise SpecError(f"built-in {kind} file {name}.toml is malformed: {e}") from None


def load_model(name_or_path: str | Path | ModelSpec) -> ModelSpec:
    """A built-in model by name, or a Hugging Face ``config.json`` by path.

    Raises:
        UnknownNameError: not a catalog name nor an existing file; lists the valid names.
        SpecError: the file is malformed.
    """
    if isinstance(name_or_path, ModelSpec):
        return name_or_path
    if not isinstance(name_or_path, (str, Path)):
        raise SpecError(f"model must be a catalog name, a config.json path or a ModelSpec, got "
                        f"{type(name_or_path).__name__} {name_or_path!r:.80}")
    s = str(name_or_path)
    if s in list_models():
        return _load_builtin_model(s)
    try:
        exists, is_dir = Path(s).exists(), Path(s).is_dir()
    except (OSError, ValueError):  # a name too long for a path, or with a NUL byte
        exists = is_dir = False
    if is_dir:
        raise SpecError(f"model config {s} is a directory; pass the config.json file inside it")
    if s.endswith(".json") or exists:
        if not exists:
            raise SpecError(f"model config file {s} does not exist")
        return model_from_hf_config(s)
    raise unknown_name("model", s, list_models(), "Or pass the path of a Hugging Face config.json.")


@functools.cache
def _load_builtin_model(name: str) -> ModelSpec:
    raw = _read("models", name)
    sources = dict(raw.pop("sources", {}))
    try:
        return ModelSpec(sources=sources, **raw)
    except TypeError as e:
        raise SpecError(f"built-in model file {name}.toml: {e}") from None


def load_hardware(name: str | HardwareSpec) -> HardwareSpec:
    """A built-in chip by name.

    Raises:
        UnknownNameError: not a catalog name; lists the valid names and the closest match.
    """
    if isinstance(name, HardwareSpec):
        return name
    if not isinstance(name, str) or name not in list_hardware():
        raise unknown_name("hardware", str(name), list_hardware())
    return _load_builtin_hardware(name)


@functools.cache
def _load_builtin_hardware(name: str) -> HardwareSpec:
    raw = _read("hardware", name)
    sources: dict[str, str] = {}
    price_date = raw.get("price", {}).get("usd_per_chip_hour", {}).get("date", "")

    def value(key: str, entry: Any) -> float:
        if not (isinstance(entry, dict) and "value" in entry and entry.get("source")):
            raise SpecError(f"built-in hardware {name}.toml: {key} needs {{ value = ..., source = ... }}")
        sources[key] = entry["source"]
        return entry["value"]

    flops = {p: value(f"flops_per_s.{p}", e) for p, e in raw.get("flops_per_s", {}).items()}
    numbers = {k: value(k, e) for section in ("memory", "interconnect", "price", "power")
               for k, e in raw.get(section, {}).items()}
    return HardwareSpec(
        name=raw["name"], flops_per_s=flops, topology=raw.get("topology", "switch"),
        torus_dims=int(raw.get("torus_dims", 0)), display_name=raw.get("display_name", ""),
        vendor=raw.get("vendor", ""), price_date=price_date, sources=sources, **numbers,
    )
