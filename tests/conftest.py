"""Tests run in float64 (the library itself never flips JAX's global config)."""

import jax

jax.config.update("jax_enable_x64", True)
