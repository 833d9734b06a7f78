"""The batch a stated load runs at, and the metrics that depend on it (calibration records).

A roofline step time needs a batch. Published serving figures instead state a
load ("offline, as many requests as fit", "about 2 requests per second"). The
functions here turn a load into a batch and a batch into the serving metrics,
using compiled step functions, so they stay differentiable and vectorised:

* **maximum load** (offline): the largest batch whose weights, KV cache at the
  mean context ``S̄ = T_in + T_out/2`` and activations fit in usable HBM. Memory
  per chip is affine in the batch, ``M(B) = M₀ + M₁·B``, so
  ``B_max = (u·M − M₀)/M₁`` (a continuous relaxation of the floor: B_max is
  hundreds to thousands, where the floor changes the answer by under 1%).
* **request rate** ``λ`` (online): Little's law, concurrency = rate x time in
  system, ``B = λ·(T_prefill(1, T_in) + T_out·ℓ(B))``, solved by fixed-point
  iteration from ``B = 1`` (a contraction while ``λ·T_out·∂ℓ/∂B < 1``, i.e.
  whenever the server keeps up with the load); queueing delay is neglected.
* **offline throughput**: prefill and decode share the chips. A wave of ``B``
  requests costs one prefill of ``B`` prompts plus ``T_out`` decode steps and
  emits ``B·T_out`` tokens: ``replicas·B·T_out / (T_prefill(B) + T_out·ℓ(B))``.
* **TTFT** at low load: prefill of one prompt plus the first decode step
  (docs/theory.md §6, without queue wait or KV transfer).

Each function takes ``decode`` and ``prefill``: callables mapping an input dict
to the output dict of :func:`costmodel.compile.compiled` (``.raw`` inside
``jit``/``grad``), and an ``inputs`` dict whose values may be arrays of one
shape (one entry per configuration).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp

__all__ = ["max_batch", "low_load_batch", "offline_tokens_per_s", "user_tokens_per_s", "ttft_s",
           "little_batch", "offline_rate", "user_rate"]

Fn = Callable[[Mapping[str, Any]], Mapping[str, jax.Array]]


# Formulas on already computed times (shared by the callable forms below and by calibration).

def little_batch(step_of_batch: Callable[[jax.Array], jax.Array], rate_per_s: Any, t_prefill_one: Any,
                 output: Any, iterations: int = 24) -> jax.Array:
    """Fixed point of ``B = max(1, λ·(T_prefill(1) + T_out·ℓ(B)))``, iterated from ``B = 1``."""
    def body(_, b):
        return jnp.maximum(rate_per_s * (t_prefill_one + output * step_of_batch(b)), 1.0)

    return jax.lax.fori_loop(0, iterations, body, jnp.ones_like(jnp.asarray(t_prefill_one)))


def offline_rate(t_prefill_batch: Any, step: Any, batch: Any, output: Any, replicas: Any) -> jax.Array:
    """``replicas·B·T_out / (T_prefill(B) + T_out·ℓ(B))`` output tokens/s."""
    return replicas * batch * output / (t_prefill_batch + output * step)


def user_rate(t_prefill_one: Any, step: Any, output: Any) -> jax.Array:
    """``T_out / (T_prefill(1) + T_out·ℓ)`` tokens/s of one stream over its request."""
    return output / (t_prefill_one + output * step)


# The same load model on compiled step functions.

def max_batch(decode: Fn, inputs: Mapping[str, Any]) -> jax.Array:
    """Largest decode batch that fits in usable HBM at ``inputs["context"]`` (at least 1).

    Math: ``B_max = (u·M − M₀)/M₁`` from ``M(B) = M₀ + M₁·B``: the model's ``max_batch`` output.

    Returns:
        Sequences per replica (continuous).
    """
    return jnp.maximum(decode({**inputs, "batch": 1.0})["max_batch"], 1.0)


def low_load_batch(decode: Fn, prefill: Fn, inputs: Mapping[str, Any], rate_per_s: Any, prompt: Any,
                   output: Any, iterations: int = 24) -> jax.Array:
    """Mean concurrent requests at ``rate_per_s`` requests/s (Little's law), at least 1.

    Math: ``B = max(1, λ·(T_prefill(1, T_in) + T_out·ℓ(B)))``, iterated ``iterations`` times from 1.

    Returns:
        The effective decode batch.
    """
    t_pf = prefill({**inputs, "batch": 1.0, "prompt": prompt})["step_time_s"]
    return little_batch(lambda b: decode({**inputs, "batch": b})["step_time_s"], rate_per_s, t_pf, output,
                        iterations)


def offline_tokens_per_s(decode: Fn, prefill: Fn, inputs: Mapping[str, Any], batch: Any, prompt: Any,
                         output: Any, replicas: Any) -> jax.Array:
    """Output tokens/s of all replicas when waves of ``batch`` requests are prefilled then decoded.

    Math: ``replicas·B·T_out / (T_prefill(B, T_in) + T_out·ℓ(B, S̄))``.
    """
    t_pf = prefill({**inputs, "batch": batch, "prompt": prompt})["step_time_s"]
    step = decode({**inputs, "batch": batch})["step_time_s"]
    return offline_rate(t_pf, step, batch, output, replicas)


def user_tokens_per_s(decode: Fn, prefill: Fn, inputs: Mapping[str, Any], batch: Any, prompt: Any,
                      output: Any) -> jax.Array:
    """Tokens/s one stream sees over a whole request, prefill included.

    Math: ``T_out / (T_prefill(1, T_in) + T_out·ℓ(B, S̄))``.
    """
    t_pf = prefill({**inputs, "batch": 1.0, "prompt": prompt})["step_time_s"]
    return user_rate(t_pf, decode({**inputs, "batch": batch})["step_time_s"], output)


def ttft_s(decode: Fn, prefill: Fn, inputs: Mapping[str, Any], batch: Any, prompt: Any) -> jax.Array:
    """Time to first token at low load: ``T_prefill(1, T_in) + ℓ(B, S̄)``."""
    t_pf = prefill({**inputs, "batch": 1.0, "prompt": prompt})["step_time_s"]
    return t_pf + decode({**inputs, "batch": batch})["step_time_s"]
