"""Tests run in float64 (the library itself never flips JAX's global config), with the persistent
caches in a temporary directory of the session (never the user's), which subprocesses, notebook
kernels and the docs build inherit through ``COSTMODEL_CACHE_DIR``."""

import os
import shutil
import tempfile

import jax

_CACHE_DIR = tempfile.mkdtemp(prefix="costmodel-test-cache-")
os.environ["COSTMODEL_CACHE_DIR"] = _CACHE_DIR
os.environ.pop("COSTMODEL_NO_CACHE", None)

jax.config.update("jax_enable_x64", True)


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_CACHE_DIR, ignore_errors=True)


def pytest_addoption(parser):
    parser.addoption("--fuzz-long", action="store_true", default=False,
                     help="run the command-line fuzz test with 10,000+ examples per command (tests/test_fuzz.py)")
    parser.addoption("--fuzz-examples", type=int, default=None, metavar="N",
                     help="with --fuzz-long: N examples per command instead of 10,000")
