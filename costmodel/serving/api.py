"""``serve``: a workload of requests under a load in, request-level figures out (docs/serving.md §19)."""

from __future__ import annotations

from dataclasses import replace

from ..config import DEFAULT_EFFICIENCY, Efficiency, Electricity, Parallel, Precision, Workload
from ..engines import Scheduler, scheduler_of
from ..errors import ConfigError, keywords_checked
from ..inputs import scenario
from ..limits import check_number
from ..specs import HardwareSpec, ModelSpec
from ..symbolic import Rules, usd_per_joule
from .aggregated import aggregated
from .disaggregated import disaggregated
from .prediction import ServingPrediction
from .replica import Replica
from .workload import Disaggregated, Load, Requests, Speculative

__all__ = ["serve", "goodput", "replica_of"]

_BREAKDOWN = ("compute", "weights", "kv", "communication", "overhead")


def replica_of(model, hardware, parallel: Parallel, precision: Precision, efficiency, usd_per_chip_hour,
               rules: Rules, spec: Speculative | None = None, electricity: Electricity | None = None) -> Replica:
    """The compiled step times of one replica (decode- and prefill-phase efficiency resolved apart)."""
    layout = rules.layout if rules is not None else "1d-ws"
    dec = scenario(model, hardware, Workload(phase="decode"), parallel, precision, efficiency, usd_per_chip_hour, layout,
                   electricity)
    pre = scenario(model, hardware, Workload(phase="prefill"), parallel, precision, efficiency, usd_per_chip_hour, layout,
                   electricity)
    return Replica(dec, pre, rules, spec)


@keywords_checked
def serve(
    model: str | ModelSpec,
    hardware: str | HardwareSpec,
    requests: Requests = Requests(),
    load: Load = Load.concurrency(64),
    *,
    parallel: Parallel = Parallel(),
    precision: Precision = Precision(),
    efficiency: Efficiency | str = DEFAULT_EFFICIENCY,
    usd_per_chip_hour: float | None = None,
    chunk_tokens: float = 8192,
    disagg: Disaggregated | None = None,
    spec: Speculative | None = None,
    rules: Rules | None = None,
    scheduler: Scheduler | str | None = None,
    electricity: Electricity | None = None,
) -> ServingPrediction:
    """Serve ``requests`` under ``load``: TTFT, TPOT, latency, throughput, memory and cost.

    Args:
        model, hardware: catalog names, a Hugging Face ``config.json`` path, or specs.
        requests: input and output tokens per request (or a mix), prefix-cache hit fraction.
        load: :meth:`Load.static`, :meth:`Load.concurrency`, :meth:`Load.rate` or :meth:`Load.offline`.
        parallel: the split of one replica and the replicas (aggregated serving).
        precision, efficiency, usd_per_chip_hour: as for :func:`costmodel.predict`.
        chunk_tokens: prompt tokens a step may prefill (the chunked-prefill budget ``C``).
        disagg: prefill and decode pools (replaces ``parallel``); each pool may name its own chip
            (``Pool(hardware=...)``), else it runs on ``hardware``.
        spec: speculative decoding or multi-token prediction.
        rules: how the roofline terms combine (the phase is set per step); e.g.
            ``Rules(attention_sharding="batch")`` shards attention and the KV cache over
            sequences (attention data parallelism, §19.6).
        scheduler: the engine's scheduling rules (§19.9): a :class:`costmodel.engines.Scheduler`, or an
            engine's name (``"vllm"``, ``"trtllm"``, ``"sglang"``) for its defaults; ``None`` (default):
            no caps, the KV cache growing with the sequences.
        electricity: the price of electricity, the PUE and the chip price's basis (:class:`costmodel.Electricity`;
            default rental prices, the electricity reported beside the cost; ``"owned"`` adds it).

    Returns:
        A :class:`ServingPrediction`.

    Raises:
        CostModelError: bad names, values or combinations.

    Example:
        >>> import costmodel as cm
        >>> s = cm.serve("llama-3-70b", "h100-sxm", cm.Requests(1024, 1024), cm.Load.concurrency(64),
        ...              parallel=cm.Parallel(tp=8))
        >>> s.tpot_s > 0 and s.ttft_s > 0
        True
    """
    for name, v, kind in (("requests", requests, Requests), ("load", load, Load)):
        if not isinstance(v, kind):
            raise ConfigError(f"{name} must be a costmodel.{kind.__name__}, got {v!r}")
    if disagg is not None and not isinstance(disagg, Disaggregated):
        raise ConfigError(f"disagg must be a costmodel.Disaggregated or None, got {disagg!r}")
    if spec is not None and not isinstance(spec, Speculative):
        raise ConfigError(f"spec must be a costmodel.Speculative or None, got {spec!r}")
    if rules is not None and not isinstance(rules, Rules):
        raise ConfigError(f"rules must be a costmodel.Rules or None, got {rules!r:.80}")
    check_number("chunk_tokens", chunk_tokens)
    scheduler_of(scheduler)  # a bad scheduler fails before any compilation
    rules = replace(rules or Rules(), phase="decode")
    electricity = Electricity() if electricity is None else electricity
    if not isinstance(electricity, Electricity):
        raise ConfigError(f"electricity must be a costmodel.Electricity or None, got {electricity!r:.80}")
    args = (precision, efficiency, usd_per_chip_hour, rules)
    O, I = requests.output_tokens, requests.input_tokens
    if disagg is None:
        rep = replica_of(model, hardware, parallel, *args, spec, electricity)
        scheduler = scheduler_of(scheduler, rep.decode_sc.hardware)
        f = aggregated(rep, requests, load, parallel.replicas, float(chunk_tokens), scheduler)
        reps = parallel.replicas
        chips = reps * rep.chips_per_replica
        usd_per_s = chips * rep.usd_per_chip_s
        requests_per_s = reps * f["requests_per_s"]
        prefill_usd_per_s = usd_per_s * f["prefill_share"]
        max_rate = None if f["max_rate_per_s"] is None else reps * f["max_rate_per_s"]
        mode = "aggregated"
        details = {"step_time_s": f["step_time_s"], "prefill_share": f["prefill_share"],
                   "max_batch": f["max_batch"], "chunk_tokens": float(chunk_tokens),
                   "tokens_per_step": rep.tokens_per_step, "load": load.kind}
        details |= _scheduler_details(scheduler, f)
        pools = [(chips, rep, rep.board_watts(f["step"]))]
    else:
        pre = replica_of(model, disagg.prefill.hardware or hardware, disagg.prefill.parallel, *args, None, electricity)
        dec = replica_of(model, disagg.decode.hardware or hardware, disagg.decode.parallel, *args, spec, electricity)
        scheduler = scheduler_of(scheduler, dec.decode_sc.hardware)
        f = disaggregated(pre, dec, requests, load, disagg, scheduler)
        chips = f["chips"]
        usd_per_s = f["prefill_usd_per_s"] + f["decode_usd_per_s"]
        requests_per_s = f["requests_per_s"]
        prefill_usd_per_s = f["prefill_usd_per_s"]
        max_rate = f["max_rate_per_s"]
        mode = "disaggregated"
        details = {k: f[k] for k in ("step_time_s", "prefill_time_s", "kv_transfer_s", "link_bytes_per_s",
                                     "prefill_capacity_per_s", "decode_capacity_per_s", "max_batch")}
        details |= {"tokens_per_step": dec.tokens_per_step, "load": load.kind,
                    "prefill_hardware": pre.decode_sc.hardware.name, "decode_hardware": dec.decode_sc.hardware.name}
        details |= _scheduler_details(scheduler, f)
        p_chips = disagg.prefill.parallel.replicas * pre.chips_per_replica
        busy = requests_per_s / f["prefill_capacity_per_s"] if f["prefill_capacity_per_s"] > 0 else 1.0
        pools = [(p_chips, pre, pre.board_watts(f["prefill_step"], busy)),
                 (chips - p_chips, dec, dec.board_watts(f["step"]))]
    out_tps, in_tps = requests_per_s * O, requests_per_s * I
    energy = _energy(pools, electricity, prefill_usd_per_s / usd_per_s if disagg is None else None,
                     out_tps, in_tps, chips)
    if electricity.owned:  # the chip price excludes power: the electricity is part of the cost (§21)
        usd_per_s += energy["usd_per_s"]
        prefill_usd_per_s += energy["prefill_usd_per_s"]
    step = f["step"]
    return ServingPrediction(
        mode=mode,
        ttft_s=float(f["ttft_s"]),
        tpot_s=float(f["tpot_s"]),
        e2e_latency_s=float(f["e2e_latency_s"]),
        output_tokens_per_s=out_tps,
        output_tokens_per_s_per_chip=out_tps / chips,
        input_tokens_per_s=in_tps,
        tokens_per_s_per_user=1.0 / f["tpot_s"] if f["tpot_s"] > 0 else float("inf"),
        requests_per_s=requests_per_s,
        decode_batch=float(f["decode_batch"]),
        utilisation=f["utilisation"],
        saturated=bool(f["saturated"]),
        max_rate_per_s=max_rate,
        chips=int(chips),
        fits=bool(f["fits"]),
        memory_bytes_per_chip=float(f["memory_bytes_per_chip"]),
        usd_per_mtok_output=1e6 * (usd_per_s - prefill_usd_per_s) / out_tps,
        usd_per_mtok_input=1e6 * prefill_usd_per_s / in_tps,
        usd_per_request=usd_per_s / requests_per_s,
        breakdown_s={k: float(step[f"{k}_s"]) for k in _BREAKDOWN},
        details=details,
        percentiles={k: float(v) for k, v in f["percentiles"].items()},
        power_w_per_chip=energy["power_w_per_chip"],
        joules_per_output_token=energy["joules_per_output_token"],
        joules_per_input_token=energy["joules_per_input_token"],
        usd_per_mtok_energy=energy["usd_per_mtok_energy"],
        usd_per_mtok_energy_input=energy["usd_per_mtok_energy_input"],
        electricity=electricity,
    )


def _energy(pools, electricity: Electricity, prefill_share: float | None, out_tps: float, in_tps: float,
            chips: int) -> dict:
    """Power and energy of a deployment (docs/theory.md §21): ``pools`` are ``(chips, replica, board watts per
    chip)``; the energy splits between input and output tokens as the chip-time does (``prefill_share``, the
    aggregated replica's), or, disaggregated, pool by pool. ``None`` figures where a chip has no board power."""
    none = dict.fromkeys(("power_w_per_chip", "joules_per_output_token", "joules_per_input_token",
                          "usd_per_mtok_energy", "usd_per_mtok_energy_input"))
    if any(w is None for _, _, w in pools):
        return none | {"usd_per_s": 0.0, "prefill_usd_per_s": 0.0}
    board = sum(n * w for n, _, w in pools)
    total = board + sum(n * rep.host_watts for n, rep, _ in pools)
    if prefill_share is None:  # disaggregated: the prefill pool's energy is the input's
        n, rep, w = pools[0]
        prefill_share = n * (w + rep.host_watts) / total if total > 0 else 0.0
    usd_per_j = usd_per_joule(electricity.pue, electricity.usd_per_kwh)
    j_out, j_in = total * (1 - prefill_share), total * prefill_share
    return {"power_w_per_chip": board / chips,
            "joules_per_output_token": j_out / out_tps, "joules_per_input_token": j_in / in_tps,
            "usd_per_mtok_energy": 1e6 * j_out * usd_per_j / out_tps,
            "usd_per_mtok_energy_input": 1e6 * j_in * usd_per_j / in_tps,
            "usd_per_s": total * usd_per_j, "prefill_usd_per_s": j_in * usd_per_j}


def _scheduler_details(scheduler: Scheduler, f: dict) -> dict:
    """The scheduler's rules and the one that bound the largest sustainable rate (``bound_by``)."""
    return {"scheduler": scheduler.name, "kv_reservation": scheduler.kv_reservation, "max_seqs": scheduler.max_seqs,
            "max_batched_tokens": scheduler.max_batched_tokens, "kv_context_tokens": f.get("kv_context_tokens"),
            "bound_by": f.get("bound_by")}


def goodput(model: str | ModelSpec, hardware: str | HardwareSpec, requests: Requests, ttft_s: float,
            **serve_kwargs) -> float:
    """The largest request rate (requests/s) whose mean TTFT meets ``ttft_s`` (goodput, DistServe).

    TTFT rises with the rate (docs/serving.md §19.3); bisection between 0 and the largest
    sustainable rate. ``serve_kwargs`` are those of :func:`serve` (``parallel``, ``disagg``, ...).
    Returns 0 when even a vanishing rate misses the target.
    """
    from .queueing import goodput_rate

    check_number("ttft_s", ttft_s)
    r_max = serve(model, hardware, requests, Load.rate(1e-6), **serve_kwargs).max_rate_per_s
    return goodput_rate(lambda r: serve(model, hardware, requests, Load.rate(r), **serve_kwargs).ttft_s,
                        ttft_s, r_max, rtol=1e-3)
