"""Tests run in float64 (the library itself never flips JAX's global config)."""

import jax
import pytest

jax.config.update("jax_enable_x64", True)


@pytest.fixture(scope="session")
def x64():
    return True
