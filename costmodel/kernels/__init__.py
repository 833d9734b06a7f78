"""Measured kernel latencies: the parquet tables of ``aiconfigurator-core`` in one SI schema per class.

* :mod:`.tables`: :func:`read_table` (the full tables; needs ``pip install -e '.[kernels]'``),
  :data:`SCHEMAS` per class of :data:`OP_CLASSES`, and the packaged sample
  (``data/sample.csv``, :func:`read_sample`) that needs neither pyarrow nor the package.

Names load on first use, so ``python -m costmodel.kernels.tables`` runs cleanly.
"""

from .._lazy import lazy_getattr

__all__ = [
    "AICONFIGURATOR_VERSION",
    "CHIP_SYSTEMS",
    "OP_CLASSES",
    "SAMPLE_PATH",
    "SCHEMAS",
    "STRING_COLUMNS",
    "VERSION_FOLDERS",
    "data_root",
    "make_sample",
    "read_sample",
    "read_table",
    "table_path",
    "write_sample",
]

__getattr__ = lazy_getattr(__name__, {name: "tables" for name in __all__})
