"""The fleet file: models with their traffic and targets, chip types with their caps and prices (docs/fleet.md).

``load_fleet`` reads a TOML file (the standard library's ``tomllib``) or an already parsed mapping
of the same shape and returns a validated, immutable :class:`Fleet`. No JAX is imported here, so a
malformed file is refused before anything is compiled. Every error is a
:class:`~costmodel.errors.ConfigError` (or :class:`~costmodel.errors.UnknownNameError` for a name
that is not in the catalog) on one line that names the file, the key, the value and what is allowed.
"""

from __future__ import annotations

import difflib
import numbers
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import DEFAULT_PUE, DEFAULT_USD_PER_KWH, PRICE_BASES
from ..errors import ConfigError, CostModelError, UnknownNameError
from ..limits import RANGES, check_in_range, shown_value
from ..serving.workload import Requests
from ..specs import load_hardware, load_model
from ..specs.precision import BYTES_PER_ELEMENT

__all__ = ["Fleet", "ModelDemand", "ChipSupply", "load_fleet", "MODES", "MAX_MODELS",
           "TOP_KEYS", "MODEL_KEYS", "CHIP_KEYS", "SITE_KEYS"]

#: the serving modes a model may allow (as ``cm.optimize_serving``'s ``mode``).
MODES = ("auto", "agg", "disagg")
#: most models in one fleet: each model costs one serving optimisation per chip type.
MAX_MODELS = 256
#: the most chips of one type: one more than this is still a chip budget the serving optimiser accepts.
MAX_AVAILABLE = int(RANGES["max_chips"][1]) - 1

TOP_KEYS = ("models", "chips", "site")
SITE_KEYS = ("power_cap_kw", "usd_per_kwh", "pue")
MODEL_KEYS = ("model", "isl", "osl", "mix", "prefix_hit", "rate_per_s", "output_tokens_per_s", "ttft_ms",
              "tpot_ms", "mode", "weights", "kv", "hardware")
CHIP_KEYS = ("available", "usd_per_chip_hour", "price_basis", "max_power_w", "idle_power_w", "host_power_w")


@dataclass(frozen=True)
class ModelDemand:
    """One model of the fleet: what it serves, at which rate, under which targets.

    Attributes:
        name: the model's label (its table name in the file).
        model: catalog model name or the path of a Hugging Face ``config.json``.
        requests: request lengths (or a mix) and prefix-cache hit fraction.
        rate_per_s: requests/s to sustain, or ``None`` when ``output_tokens_per_s`` is given.
        output_tokens_per_s: output tokens/s to sustain, or ``None`` when ``rate_per_s`` is given.
        ttft_s, tpot_s: targets in seconds (``None``: no target).
        mode: ``"auto"`` (aggregated or disaggregated, whichever is cheaper), ``"agg"`` or ``"disagg"``.
        weights, kv: the precisions to choose from (``None``: the serving optimiser's default).
        hardware: the chip types this model may run on (``None``: every chip type of the fleet).
    """

    name: str
    model: str
    requests: Requests
    rate_per_s: float | None
    output_tokens_per_s: float | None
    ttft_s: float | None
    tpot_s: float | None
    mode: str = "auto"
    weights: tuple[str, ...] | None = None
    kv: tuple[str, ...] | None = None
    hardware: tuple[str, ...] | None = None


@dataclass(frozen=True)
class ChipSupply:
    """One chip type of the fleet: how many are available and at which price.

    Attributes:
        name: catalog chip name.
        available: chips of this type the fleet may use (the cap), >= 0.
        usd_per_chip_hour: price per chip-hour (the catalog price unless the file sets one).
        price_basis: ``"rental"`` (the price includes power) or ``"owned"`` (the plan adds the electricity).
        hardware: the chip's spec with the file's board-power overrides (``max_power_w``, ``idle_power_w``,
            ``host_power_w``), or ``None`` for the catalog's.
    """

    name: str
    available: int
    usd_per_chip_hour: float
    price_basis: str = "rental"
    hardware: Any = None

    @property
    def spec(self):
        """The chip's :class:`~costmodel.specs.HardwareSpec` (the file's overrides included)."""
        return self.hardware if self.hardware is not None else load_hardware(self.name)


@dataclass(frozen=True)
class Fleet:
    """A validated fleet: its models and chip types, in the order of the file.

    Attributes:
        models: the models to serve.
        chips: the chip types that may serve them.
        source: the file it was read from, or ``"<mapping>"``.
        power_cap_kw: the site's cap on IT power (boards and hosts) in kW, or ``None`` (no cap).
        usd_per_kwh, pue: the site's price of electricity and PUE (docs/theory.md §21).
    """

    models: tuple[ModelDemand, ...]
    chips: tuple[ChipSupply, ...]
    source: str = "<mapping>"
    power_cap_kw: float | None = None
    usd_per_kwh: float = DEFAULT_USD_PER_KWH
    pue: float = DEFAULT_PUE


class _Where:
    """Error messages that name the fleet file and the key path."""

    def __init__(self, source: str):
        self.prefix = "fleet" if source == "<mapping>" else f"fleet file {source}"

    def error(self, key: str, text: str, cls: type[CostModelError] = ConfigError) -> CostModelError:
        sep = ": " if key and not text.startswith("must be") else " " if key else ""
        return cls(f"{self.prefix}: {key}{sep}{text}")


def _table(where: _Where, key: str, v: Any) -> Mapping:
    if not isinstance(v, Mapping):
        raise where.error(key, f"must be a table, got {type(v).__name__} {shown_value(v):.80}")
    return v


def _check_keys(where: _Where, key: str, table: Mapping, allowed: tuple[str, ...]) -> None:
    for k in table:
        if k not in allowed:
            close = difflib.get_close_matches(str(k), allowed, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise where.error(f"{key}.{k}" if key else str(k),
                              f"unknown key{hint} Allowed keys: {', '.join(allowed)}")


def _number(where: _Where, key: str, v: Any, range_name: str, *, scale: float = 1.0, unit: str | None = None,
            integer: bool = False) -> float:
    lo, hi, lib_unit = RANGES[range_name]
    try:
        return check_in_range(range_name, v, lo * scale, hi * scale, lib_unit if unit is None else unit,
                              integer=integer, label=key)
    except ConfigError as e:  # "KEY must be ..., got ..."
        raise ConfigError(f"{where.prefix}: {e}") from None


def _names(where: _Where, key: str, v: Any, check) -> tuple[str, ...]:
    """A string or a non-empty list of strings, each passed through ``check``."""
    items = [v] if isinstance(v, str) else v
    if not isinstance(items, list) or not items or not all(isinstance(x, str) for x in items):
        raise where.error(key, f"must be a name or a non-empty list of names, got {shown_value(v):.80}")
    for x in items:
        check(x)
    return tuple(dict.fromkeys(items))


def _precisions(where: _Where, key: str, v: Any) -> tuple[str, ...]:
    def check(x: str) -> None:
        if x not in BYTES_PER_ELEMENT:
            raise where.error(key, f"unknown precision {x!r:.40}; allowed: {', '.join(BYTES_PER_ELEMENT)}")

    return _names(where, key, v, check)


def _requests(where: _Where, key: str, t: Mapping) -> Requests:
    hit = 0.0
    if "prefix_hit" in t:
        hit = t["prefix_hit"]
        ok = isinstance(hit, numbers.Real) and not isinstance(hit, bool) and 0 <= hit < 1
        if not ok:  # NaN fails the comparison
            raise where.error(f"{key}.prefix_hit", f"must be a number in [0, 1), got {shown_value(hit):.80}")
    has_len, has_mix = "isl" in t or "osl" in t, "mix" in t
    if has_len and has_mix:
        raise where.error(key, "give isl and osl, or mix, not both")
    try:
        if has_mix:
            mix = t["mix"]
            if not isinstance(mix, list):
                raise where.error(f"{key}.mix", "must be a list of [weight, isl, osl] triples, got "
                                                f"{shown_value(mix):.80}")
            return Requests.mix(mix, hit)
        missing = [k for k in ("isl", "osl") if k not in t]
        if missing:
            raise where.error(key, f"needs {' and '.join(missing)} (input and output tokens per request) "
                                   "or mix = [[weight, isl, osl], ...]")
        isl = _number(where, f"{key}.isl", t["isl"], "input_tokens")
        osl = _number(where, f"{key}.osl", t["osl"], "output_tokens")
        return Requests(float(isl), float(osl), float(hit))
    except ConfigError as e:
        if str(e).startswith(where.prefix):
            raise
        raise where.error(key, str(e)) from None


def _model(where: _Where, name: str, t: Any, chips: tuple[str, ...], base: Path | None) -> ModelDemand:
    key = f"models.{name}"
    t = _table(where, key, t)
    _check_keys(where, key, t, MODEL_KEYS)
    model = t.get("model", name)
    if not isinstance(model, str) or not model:
        raise where.error(f"{key}.model", f"must be a catalog model name or a config.json path, got "
                                          f"{shown_value(model):.80}")
    if base is not None and (model.endswith(".json") or "/" in model) and not Path(model).is_absolute():
        model = str(base / model)  # a config path is relative to the fleet file
    try:
        load_model(model)
    except CostModelError as e:
        raise where.error(f"{key}.model", str(e), type(e) if isinstance(e, UnknownNameError) else ConfigError) from None
    requests = _requests(where, key, t)
    given = [k for k in ("rate_per_s", "output_tokens_per_s") if k in t]
    if len(given) != 1:
        raise where.error(key, "needs exactly one of rate_per_s (requests/s) or output_tokens_per_s, got "
                               + (" and ".join(given) if given else "neither"))
    rate = float(_number(where, f"{key}.rate_per_s", t["rate_per_s"], "rate_per_s")) if "rate_per_s" in t else None
    demand = (float(_number(where, f"{key}.output_tokens_per_s", t["output_tokens_per_s"], "demand_tokens_per_s"))
              if "output_tokens_per_s" in t else None)
    targets = {k: (None if k not in t else
                   _number(where, f"{key}.{k}", t[k], k.replace("_ms", "_s"), scale=1e3, unit="ms") / 1e3)
               for k in ("ttft_ms", "tpot_ms")}
    mode = t.get("mode", "auto")
    if not isinstance(mode, str) or mode not in MODES:
        raise where.error(f"{key}.mode", f"must be one of {', '.join(map(repr, MODES))}, got {shown_value(mode):.80}")
    weights = _precisions(where, f"{key}.weights", t["weights"]) if "weights" in t else None
    kv = _precisions(where, f"{key}.kv", t["kv"]) if "kv" in t else None
    hardware = None
    if "hardware" in t:
        def known(x: str) -> None:
            if x not in chips:
                raise where.error(f"{key}.hardware", f"{x!r:.40} is not a chip type of this fleet; "
                                                     f"the fleet's chips: {', '.join(chips)}")

        hardware = _names(where, f"{key}.hardware", t["hardware"], known)
    return ModelDemand(name=name, model=model, requests=requests, rate_per_s=rate, output_tokens_per_s=demand,
                       ttft_s=targets["ttft_ms"], tpot_s=targets["tpot_ms"], mode=mode, weights=weights, kv=kv,
                       hardware=hardware)


def _chip(where: _Where, name: str, t: Any) -> ChipSupply:
    key = f"chips.{name}"
    try:
        load_hardware(name)
    except UnknownNameError as e:
        raise where.error(key, str(e), UnknownNameError) from None
    t = _table(where, key, t)
    _check_keys(where, key, t, CHIP_KEYS)
    if "available" not in t:
        raise where.error(key, "needs available (how many chips of this type the fleet may use)")
    try:
        available = check_in_range("available", t["available"], 0, MAX_AVAILABLE, "chips", integer=True,
                                   label=f"{key}.available")
    except ConfigError as e:
        raise ConfigError(f"{where.prefix}: {e}") from None
    price = (_number(where, f"{key}.usd_per_chip_hour", t["usd_per_chip_hour"], "usd_per_chip_hour")
             if "usd_per_chip_hour" in t else load_hardware(name).usd_per_chip_hour)
    basis = t.get("price_basis", "rental")
    if not isinstance(basis, str) or basis not in PRICE_BASES:
        raise where.error(f"{key}.price_basis", f"must be one of {', '.join(map(repr, PRICE_BASES))}, got "
                                                f"{shown_value(basis):.80}")
    power = {k: float(_number(where, f"{key}.{k}", t[k], "power_w")) for k in ("max_power_w", "idle_power_w",
                                                                              "host_power_w") if k in t}
    hw = None
    if power:
        try:
            hw = load_hardware(name).replace(**power)
        except CostModelError as e:
            raise where.error(key, str(e)) from None
    if basis == "owned" and not (hw or load_hardware(name)).has_power:
        raise where.error(f"{key}.price_basis", f"'owned' needs the board power of {name}, which the catalog "
                                                "lacks: set max_power_w and idle_power_w in this table")
    return ChipSupply(name=name, available=int(available), usd_per_chip_hour=float(price), price_basis=basis,
                      hardware=hw)


def _site(where: _Where, t: Any, chips: tuple[ChipSupply, ...]) -> dict[str, Any]:
    t = _table(where, "site", t)
    _check_keys(where, "site", t, SITE_KEYS)
    out: dict[str, Any] = {}
    if "power_cap_kw" in t:
        out["power_cap_kw"] = float(_number(where, "site.power_cap_kw", t["power_cap_kw"], "power_cap_kw"))
        lacking = [c.name for c in chips if not c.spec.has_power]
        if lacking:
            raise where.error("site.power_cap_kw", f"needs the board power of every chip type; the catalog has none "
                                                   f"for {', '.join(lacking)}: set max_power_w and idle_power_w in "
                                                   "their [chips] tables")
    for k in ("usd_per_kwh", "pue"):
        if k in t:
            out[k] = float(_number(where, f"site.{k}", t[k], k))
    return out


def _read(path: Path) -> dict[str, Any]:
    where = f"fleet file {path}"
    try:
        text = path.read_bytes().decode("utf-8")
    except IsADirectoryError:
        raise ConfigError(f"{where} is a directory; pass a TOML file") from None
    except FileNotFoundError:
        raise ConfigError(f"{where} does not exist") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{where} is not UTF-8 text (byte {e.start})") from None
    except (OSError, ValueError) as e:  # unreadable, a name too long or with a NUL byte
        raise ConfigError(f"cannot read {where}: {getattr(e, 'strerror', None) or e}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{where} is not valid TOML: {e}") from None
    except RecursionError:
        raise ConfigError(f"{where} nests too deeply") from None


def load_fleet(source: str | Path | Mapping[str, Any] | Fleet) -> Fleet:
    """Read and validate a fleet: a TOML file path, a parsed mapping of the same shape, or a :class:`Fleet`.

    A model's ``config.json`` path is relative to the fleet file's folder (to the working directory
    for a mapping).

    Raises:
        ConfigError: malformed TOML, an unknown key, a value of the wrong type or out of range, a
            missing rate; the message names the file and the key.
        UnknownNameError: a model or chip name that is not in the catalog.

    Example:
        >>> import costmodel as cm
        >>> f = cm.load_fleet({"chips": {"h100-sxm": {"available": 8}},
        ...                    "models": {"chat": {"model": "llama-3-8b", "isl": 1024, "osl": 256, "rate_per_s": 2}}})
        >>> f.chips[0].usd_per_chip_hour == cm.load_hardware("h100-sxm").usd_per_chip_hour, f.models[0].rate_per_s
        (True, 2.0)
    """
    if isinstance(source, Fleet):
        return source
    if isinstance(source, (str, Path)):
        path = Path(source)
        raw, base, name = _read(path), path.parent, str(source)
    elif isinstance(source, Mapping):
        raw, base, name = source, None, "<mapping>"
    else:
        raise ConfigError(f"a fleet is a TOML file path or a mapping, got {type(source).__name__} "
                          f"{shown_value(source):.80}")
    where = _Where(name)
    _check_keys(where, "", raw, TOP_KEYS)
    for k in ("models", "chips"):
        if k not in raw:
            what = "[models.NAME] tables" if k == "models" else "[chips.NAME] tables"
            raise where.error("", f"needs {what} (see docs/fleet.md)")
    chips_t, models_t = _table(where, "chips", raw["chips"]), _table(where, "models", raw["models"])
    if not chips_t:
        raise where.error("chips", "needs at least one chip type, e.g. [chips.h100-sxm] available = 64")
    if not models_t:
        raise where.error("models", "needs at least one model, e.g. [models.chat] model = \"llama-3-70b\" ...")
    if len(models_t) > MAX_MODELS:
        raise where.error("models", f"holds {len(models_t)} models; at most {MAX_MODELS} are allowed")
    chips = tuple(_chip(where, str(k), v) for k, v in chips_t.items())
    names = tuple(c.name for c in chips)
    models = tuple(_model(where, str(k), v, names, base) for k, v in models_t.items())
    site = _site(where, raw["site"], chips) if "site" in raw else {}
    return Fleet(models=models, chips=chips, source=name, **site)
