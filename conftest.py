"""Every pytest run in this checkout (tests, doctests, notebooks, the docs build) keeps the persistent
caches in a temporary directory of the session, never the user's: subprocesses and notebook kernels
inherit it through ``COSTMODEL_CACHE_DIR``."""

import os
import shutil
import tempfile

_CACHE_DIR = tempfile.mkdtemp(prefix="costmodel-test-cache-")
os.environ["COSTMODEL_CACHE_DIR"] = _CACHE_DIR
os.environ.pop("COSTMODEL_NO_CACHE", None)


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_CACHE_DIR, ignore_errors=True)
