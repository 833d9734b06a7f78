"""Disaggregated serving: a prefill pool and a decode pool, the KV cache handed over (docs/serving.md §19.4).

DistServe (Zhong et al., OSDI 2024) and Splitwise (Patel et al., ISCA 2024).
With ``r_p`` prefill replicas prefilling ``b_p`` prompts at a time in
``T_pf = T_prefill(b_p, P)`` and ``r_d`` decode replicas at ``B`` sequences
each with step ``ℓ(B, S̄)``:

* prefill capacity ``μ_p = r_p·b_p/T_pf`` requests/s; decode throughput
  ``X(B) = r_d·B/(D·ℓ(B))`` requests/s (``D = (O-1)/E`` steps per request),
  capacity ``μ_d = X(B_cap)``; the largest sustainable rate is ``min(μ_p, μ_d)``.
  Rate matching: one decode replica keeps ``X(B_cap)/r_d ÷ (b_p/T_pf)`` prefill
  replicas busy.
* KV hand-over: ``t_kv = I·κ/W_link``, ``W_link`` the per-chip bandwidth of the
  scale-up domain when both replicas fit in one domain, else of the scale-out
  network (pools on two chip types: the slower of their scale-out links), times the
  chips of the smaller replica (or a given link). Overlapped
  (streamed layer by layer during the prefill), TTFT counts ``max(T_pf, t_kv)``.
* TTFT = prefill queue wait (Kingman on the prefill replicas, service
  ``T_pf/b_p`` per prompt) + ``T_pf`` + ``t_kv``; TPOT = ``ℓ(B)/E`` of the decode
  pool alone; cost = both pools' chips.
"""

from __future__ import annotations

import math

from ..engines import UNBOUNDED, Scheduler
from .percentiles import alike, percentile_keys, percentiles_of, shot_noise_tpot, wait_ttft_atoms
from .queueing import kingman_wait_s
from .replica import Replica, bisect_increasing
from .workload import Disaggregated, Load, Requests

__all__ = ["disaggregated", "link_bytes_per_s"]


def link_bytes_per_s(dg: Disaggregated, pre: Replica, dec: Replica) -> float:
    """Bytes/s of one KV hand-over between a prefill and a decode replica."""
    if dg.link != "auto":
        return float(dg.link)
    hw, hp = dec.decode_sc.hardware, pre.decode_sc.hardware
    n_p, n_d = pre.chips_per_replica, dec.chips_per_replica
    if hw.name != hp.name:  # pools of two chip types share no scale-up domain: the slower scale-out link
        return min(hw.scale_out_bytes_per_s, hp.scale_out_bytes_per_s) * min(n_p, n_d)
    per_chip = hw.scale_up_bytes_per_s if n_p + n_d <= hw.scale_up_domain_chips else hw.scale_out_bytes_per_s
    return per_chip * min(n_p, n_d)


def disaggregated(pre: Replica, dec: Replica, req: Requests, load: Load, dg: Disaggregated,
                  scheduler: Scheduler = UNBOUNDED) -> dict:
    """Serving figures of the whole deployment (rates cover every replica of both pools); the decode pool
    under the engine's ``scheduler`` (its KV reservation and sequence cap, §19.9)."""
    I, O, P = req.input_tokens, req.output_tokens, req.prefill_tokens
    E = dec.tokens_per_step
    D = max(O - 1.0, 0.0) / E
    S = I + O / 2
    r_p, r_d = dg.prefill.parallel.replicas, dg.decode.parallel.replicas
    b_p = dg.prefill.batch or 1.0
    kappa = float(dec.decode(1.0, S)["kv_bytes_per_token"])
    bw = link_bytes_per_s(dg, pre, dec)

    def transfer(prompts):
        return 0.0 if math.isinf(bw) else prompts * I * kappa / bw

    def first_token(t_pf, t_kv):
        return max(t_pf, t_kv) if dg.overlap else t_pf + t_kv

    S_kv = scheduler.kv_context(I, O)
    fits_cap = float(dec.max_batch(S_kv))
    caps = {"kv_capacity": fits_cap, "max_seqs": scheduler.max_seqs, "pool_batch": dg.decode.batch,
            "max_batch": load.max_batch}
    cap_rule, cap = min(((k, v) for k, v in caps.items() if v is not None), key=lambda kv: kv[1])
    if scheduler.max_batched_tokens is not None:  # a decode step of q tokens per sequence within the budget
        cap_rule, cap = min((cap_rule, cap), ("max_batched_tokens", scheduler.max_batched_tokens /
                                              (1.0 + dec.draft_length)), key=lambda kv: kv[1])
    cap = max(cap, 1.0)
    pf = pre.prefill(b_p, P)
    t_pf = float(pf["step_time_s"])
    mu_p = r_p * b_p / t_pf
    t_kv = transfer(1.0)

    def tau(B):
        return dec.step(B, 0.0, S)

    def X(B):  # requests/s the decode pool completes at B sequences per replica
        return r_d * B / (D * tau(B)) if D > 0 else math.inf

    mu_d = float(X(cap))
    out = {"prefill_capacity_per_s": mu_p, "decode_capacity_per_s": mu_d, "kv_transfer_s": t_kv,
           "link_bytes_per_s": bw, "prefill_time_s": t_pf, "max_batch": fits_cap,
           "utilisation": None, "saturated": False, "max_rate_per_s": min(mu_p, mu_d),
           "bound_by": "prefill_capacity" if mu_p <= mu_d else cap_rule, "kv_context_tokens": S_kv,
           "chips": r_p * pre.chips_per_replica + r_d * dec.chips_per_replica,
           "prefill_usd_per_s": r_p * pre.chips_per_replica * pre.usd_per_chip_s,
           "decode_usd_per_s": r_d * dec.chips_per_replica * dec.usd_per_chip_s}

    if load.kind == "static":
        B = load.value / r_d
        t_pf = float(pre.prefill(load.value / r_p, P)["step_time_s"])
        ttft = first_token(t_pf, transfer(load.value / r_p))
        t_dec = float(dec.static_decode_s(B, I, D)) if D > 0 else 0.0
        t = float(tau(B))
        out.update(ttft_s=ttft, e2e_latency_s=ttft + t_dec, tpot_s=t_dec / (O - 1) if O > 1 else 0.0,
                   requests_per_s=load.value / (ttft + t_dec), prefill_time_s=t_pf, max_rate_per_s=None)
        mem_B = B
    else:
        base = first_token(t_pf, t_kv)
        limit = min(mu_p, mu_d)
        if load.kind == "rate":
            R = load.value
            out["utilisation"] = R / limit
            out["saturated"] = R >= limit
            rate = min(R, limit)
        elif load.kind == "concurrency":
            N = load.value
            # Little's law: N = X·(first-token time) + decoding sequences, increasing in B
            if D > 0:
                B_n = float(bisect_increasing(lambda b: X(b) * base + r_d * b, N, 0.0, cap))
                rate = min(float(X(B_n)), limit)
            else:
                rate = min(N / base, limit)
        else:
            rate = limit
        B = float(bisect_increasing(lambda b: X(b), rate, 0.0, cap)) if D > 0 else 0.0
        t = float(tau(B)) if D > 0 else 0.0
        if load.kind == "rate":
            wait = kingman_wait_s(rate / r_p, t_pf / b_p, req.prefill_tokens_cv2)
            ttft = math.inf if out["saturated"] else wait + base
            e2e = ttft + D * t
        elif load.kind == "concurrency":
            e2e = load.value / rate
            ttft = max(e2e - D * t, base)
        else:
            ttft, e2e = base, base + D * t
        out.update(ttft_s=ttft, e2e_latency_s=e2e, tpot_s=t / E if O > 1 else 0.0, requests_per_s=rate)
        mem_B = max(B, 1.0)
    out["percentiles"] = _tails(pre, dec, req, load, out, b_p, r_p, r_d, B, E, S, first_token, transfer)
    step = dec.mixed(max(B, 1e-12), 0.0, S)
    mem_d = dec.decode(max(mem_B, 1.0), S_kv)
    fits = (bool(mem_d["memory_bytes_per_chip"] <= mem_d["usable_bytes_per_chip"])
            and bool(pf["memory_bytes_per_chip"] <= pf["usable_bytes_per_chip"]))
    out.update(decode_batch=B, step=step, step_time_s=float(step["step_time_s"]), fits=fits, prefill_step=pf,
               memory_bytes_per_chip=max(float(mem_d["memory_bytes_per_chip"]), float(pf["memory_bytes_per_chip"])))
    return out


def _tails(pre: Replica, dec: Replica, req: Requests, load: Load, out: dict, b_p: float, r_p: int, r_d: int,
           B: float, E: float, S: float, first_token, transfer) -> dict[str, float]:
    """Percentiles of TTFT, TPOT and latency (§19.10): a class's own prefill and hand-over after the
    prefill queue's wait (0 with probability ``1 - ρ``, else exponential; none for a static batch, equal
    for all in a closed loop); the decode pool's TPOT as shot noise of the batch around the request."""
    ttft = out["ttft_s"]
    if load.kind == "static":
        return alike(ttft, out["tpot_s"], out["e2e_latency_s"])
    lengths = sorted({i for _, i, _ in req.classes})
    t_pf = {i: float(pre.prefill(b_p, i * (1 - req.prefix_hit))["step_time_s"]) for i in lengths}
    own = [first_token(t_pf[i], transfer(1.0) * i / req.input_tokens) for _, i, _ in req.classes]
    mean_own = sum(w * o for (w, _, _), o in zip(req.classes, own))
    wait = max(ttft - mean_own, 0.0) if math.isfinite(ttft) else 0.0
    if load.kind == "rate":
        busy = min(out["requests_per_s"] / r_p * out["prefill_time_s"] / b_p, 1.0)
        first = wait_ttft_atoms(own, wait, busy)
    else:
        first = wait_ttft_atoms([o + wait for o in own], 0.0, 0.0)
    rate = out["requests_per_s"] / r_d
    slope = dec.batch_slope(B, S) if load.kind == "rate" and B > 0 else 0.0
    step_s = out["tpot_s"] * E  # the decode pool's step (0 with one output token: no decode steps)
    noise = shot_noise_tpot(step_s, step_s, rate, [(w, max(o - 1.0, 0.0) / E) for w, _, o in req.classes], slope,
                            [0.0] * len(req.classes))
    tails = percentiles_of([w for w, _, _ in req.classes], first, noise, E)
    if not math.isfinite(ttft):
        tails |= dict.fromkeys(percentile_keys("ttft") + percentile_keys("e2e"), math.inf)
    return tails
