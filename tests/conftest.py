"""Tests run in float64 (the library itself never flips JAX's global config); the persistent caches
live in a temporary directory of the session (../conftest.py)."""

import jax

jax.config.update("jax_enable_x64", True)


def pytest_addoption(parser):
    parser.addoption("--fuzz-long", action="store_true", default=False,
                     help="long runs: the command-line fuzz test with 10,000+ examples per command "
                          "(tests/test_fuzz.py) and the full refit of the packaged profile (tests/test_calibrate.py)")
    parser.addoption("--fuzz-examples", type=int, default=None, metavar="N",
                     help="with --fuzz-long: N examples per command instead of 10,000")
