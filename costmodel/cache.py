"""Persistent caches: compiled XLA programs, traced programs and the generated Python of the SymPy-to-JAX step.

Three caches make a fresh process nearly as quick as a warm one, all in one directory:

* ``xla/``: JAX's persistent compilation cache (``jax_compilation_cache_dir``), with the
  thresholds lowered so that this package's programs, which compile in a fraction of a second,
  are kept too.
* ``export/``: the traced programs of the optimiser's loops (:mod:`jax.export`), so that a
  fresh process neither builds nor traces them.
* ``sympy/``: the Python source that ``sympy.lambdify`` writes for each set of expressions, one
  JSON file per key. The key hashes the model structure, the rules, the output names, the package
  version and the source of the modules that build and lambdify the expressions, so an edited
  formula never loads an old function. Loading a file executes the same source with the same
  objects for every global it reads (each named in the file by module and name, so loading needs
  no SymPy), so the function, and every number it returns, are the same.

The directory is ``platformdirs.user_cache_dir("costmodel")`` (e.g. ``~/.cache/costmodel`` on
Linux), or ``$COSTMODEL_CACHE_DIR``; it is created on the first compilation, never at import.
``COSTMODEL_NO_CACHE=1``, ``costmodel --no-cache ...`` or :func:`set_cache` (``enabled=False``)
turn them off. A corrupt or unreadable entry is ignored and rebuilt; a directory that
cannot be written only costs the speed-up.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

__all__ = ["ENV_DIR", "ENV_OFF", "cache_dir", "cache_enabled", "set_cache", "configure_jax", "cached_source",
           "CachedJit"]

#: environment variable that moves the cache directory
ENV_DIR = "COSTMODEL_CACHE_DIR"
#: environment variable that turns the caches off when set to anything but "", "0", "false" or "no"
ENV_OFF = "COSTMODEL_NO_CACHE"
#: modules whose source decides the generated functions (part of every key)
_KEYED_SOURCES = ("symbolic", "compile.py", "relax.py", "cache.py", "optimizer", "config.py")

_override: dict[str, object] = {}
_jax_dir: str | None = None  # the directory this module pointed JAX at, if any


def set_cache(enabled: bool | None = None, directory: str | os.PathLike | None = None) -> None:
    """Turn the persistent caches on or off, or move them, for this process.

    Args:
        enabled: ``False`` turns the caches off, ``True`` on; ``None`` leaves the setting to
            ``$COSTMODEL_NO_CACHE``.
        directory: the cache directory; ``None`` leaves it to ``$COSTMODEL_CACHE_DIR`` or the
            user's cache directory.

    Programs already compiled in this process stay compiled; the setting applies to the next.
    """
    _override.clear()
    if enabled is not None:
        _override["enabled"] = bool(enabled)
    if directory is not None:
        _override["directory"] = Path(directory)
    if _jax_dir is not None:
        configure_jax()


def cache_enabled() -> bool:
    """Whether the persistent caches are on (:func:`set_cache`, else ``$COSTMODEL_NO_CACHE``)."""
    if "enabled" in _override:
        return bool(_override["enabled"])
    return os.environ.get(ENV_OFF, "").strip().lower() in ("", "0", "false", "no")


def cache_dir() -> Path:
    """The cache directory (not created here): :func:`set_cache`, ``$COSTMODEL_CACHE_DIR``, or the
    user's cache directory."""
    if "directory" in _override:
        return Path(_override["directory"])  # type: ignore[arg-type]
    if os.environ.get(ENV_DIR):
        return Path(os.environ[ENV_DIR]).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("costmodel", appauthor=False))


def _usable_dir(sub: str) -> Path | None:
    """``cache_dir()/sub``, created if needed, or ``None`` when the caches are off or it cannot be made."""
    if not cache_enabled():
        return None
    path = cache_dir() / sub
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return path


def configure_jax() -> None:
    """Point JAX's persistent compilation cache at ``cache_dir()/xla`` (or turn it off).

    Called before this package compiles anything. A cache directory the user set for JAX
    themselves (``jax_compilation_cache_dir``) is left alone. JAX's thresholds are process-wide:
    while this cache is on, every program the process compiles is kept.
    """
    global _jax_dir
    import jax
    from jax.experimental.compilation_cache import compilation_cache as cc

    current = jax.config.jax_compilation_cache_dir
    if current is not None and current != _jax_dir:
        return  # the user's own setting
    path = _usable_dir("xla") if _keyed_entries() else None
    wanted = None if path is None else str(path)
    if wanted == current and (wanted is None or jax.config.jax_enable_compilation_cache):
        return
    if current is not None:
        cc.reset_cache()  # JAX opens its cache once per process: let it reopen at the new place
    if wanted is None:
        jax.config.update("jax_compilation_cache_dir", None)
    else:
        jax.config.update("jax_enable_compilation_cache", True)
        jax.config.update("jax_compilation_cache_dir", wanted)
        # this package's programs compile in well under JAX's default second: keep them all
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    _jax_dir = wanted


class _KeyedEntries:
    """JAX's file cache for this package's directory, with each entry's key written at its start.

    JAX names each entry by its key but does not store the key inside, so an entry renamed,
    copied or rotated among the others would load and run another program (a wrong answer,
    or an ``AssertionError`` deep in JAX). Here each entry holds ``key + NUL + JAX's bytes``; an
    entry that does not start with its own key is a miss, and JAX compiles and rewrites it.
    """

    def __init__(self, base, key_prefix: bytes = b""):
        self._base, self._prefix = base, key_prefix

    @property
    def _path(self):
        return self._base._path

    def get(self, key: str):
        data = self._base.get(key)
        header = self._prefix + key.encode() + b"\0"
        if data is None:
            return None
        if not data.startswith(header):
            self._drop(key)  # JAX never overwrites an entry: remove it so that the next put stores this key's
            return None
        return data[len(header):]

    def _drop(self, key: str) -> None:
        try:
            from jax._src import lru_cache

            (Path(self._base.path) / f"{key}{lru_cache._CACHE_SUFFIX}").unlink()
        except (ImportError, AttributeError, OSError):
            pass  # left in place: a miss each time, never a wrong program

    def put(self, key: str, value: bytes) -> None:
        self._base.put(key, self._prefix + key.encode() + b"\0" + value)


_KEYED: list[bool] = []


def _keyed_entries() -> bool:
    """Make JAX's file cache check each entry's key in this package's cache directory (once per
    process). Where this JAX has no such hook, JAX's cache stays off: compiling again costs
    time, an unchecked entry could cost a wrong answer."""
    if not _KEYED:
        try:
            from jax._src import compilation_cache as jcc

            plain = jcc.get_file_cache

            def get_file_cache(path: str):
                made = plain(path)
                if made is None or _jax_dir is None or Path(path) != Path(_jax_dir):
                    return made  # another directory (the user's own): JAX's own behaviour
                return _KeyedEntries(made[0], b"costmodel\0"), made[1]

            jcc.get_file_cache = get_file_cache
            _KEYED.append(True)
        except (ImportError, AttributeError):
            _KEYED.append(False)
    return _KEYED[0]


def _source_fingerprint() -> str:
    root = Path(__file__).parent
    h = hashlib.sha256()
    for name in _KEYED_SOURCES:
        p = root / name
        for f in sorted(p.rglob("*.py")) if p.is_dir() else [p]:
            h.update(f.relative_to(root).as_posix().encode())
            h.update(f.read_bytes())
    return h.hexdigest()


_FINGERPRINT: list[str] = []


def _key(parts: tuple) -> str:
    from importlib.metadata import version  # SymPy's version without importing SymPy

    from . import __version__

    if not _FINGERPRINT:
        _FINGERPRINT.append(_source_fingerprint())
    text = repr((__version__, version("sympy"), _FINGERPRINT[0]) + parts)
    return hashlib.sha256(text.encode()).hexdigest()


def cached_source(parts: tuple[str, ...], build: Callable[[], dict], load: Callable[[dict], T]) -> T:
    """``load(entry)`` of the cached entry for the key ``parts``, or of a fresh ``build()``, then stored.

    ``build()`` returns a dict with ``source`` (the generated function's Python), ``inputs``,
    ``outputs`` and ``imports`` (lists; ``imports`` ``None`` when the function cannot be cached),
    ``globals`` (``[module, name]`` of every global the source reads, or ``None``)
    and optionally ``function`` (the function just built, never stored). A file that cannot be read or parsed,
    does not hold this key, or that ``load`` refuses (raises) is ignored and rebuilt; a failed write
    is ignored.
    """
    folder = _usable_dir("sympy")
    if folder is None:
        return load(build())
    key = _key(parts)
    path = folder / f"{key}.json"
    try:
        entry = json.loads(path.read_text(encoding="utf-8"))
        if (isinstance(entry, dict) and entry.get("key") == key and isinstance(entry.get("source"), str)
                and all(isinstance(entry.get(k), list) for k in ("inputs", "outputs", "imports"))):
            return load(entry)
    except Exception:  # noqa: BLE001 - any broken entry (unreadable, bad JSON, bad source) is rebuilt
        pass
    entry = build()
    out = load(entry)
    stored = {k: v for k, v in entry.items() if k != "function"} | {"key": key}
    if stored.get("imports") is None:
        return out  # a generated function whose globals cannot be written down: not cached
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(stored, f)
        os.replace(tmp, path)
    except (OSError, TypeError, ValueError):
        pass
    return out


def _signature(args: tuple) -> tuple:
    """What a traced program depends on besides the code: the pytree, shapes and dtypes (as JAX
    will see them) of the arguments, and the backend."""
    import jax
    import numpy as np

    leaves, tree = jax.tree.flatten(args)
    # a Python number and a weakly typed JAX array of it trace alike (the same program)
    dtypes = (a.dtype if hasattr(a, "dtype") else np.result_type(a) for a in leaves)
    avals = tuple((np.shape(a), str(jax.dtypes.canonicalize_dtype(d)),
                   isinstance(a, (int, float)) or bool(getattr(a, "weak_type", False))) for a, d in zip(leaves, dtypes))
    return str(tree), avals, jax.default_backend(), jax.__version__


class CachedJit:
    """``jax.jit(make())`` whose traced and lowered program is also kept on disk (``export/``), one
    file per argument signature, through :mod:`jax.export`.

    A fresh process that finds the file skips building and tracing the function: it deserialises
    the program, and JAX's compilation cache supplies the executable. The function itself
    (``make()``) is built only when a signature has no file. With the caches off, or a file that
    does not load, it is a plain ``jax.jit``.
    """

    def __init__(self, parts: tuple[str, ...], make: Callable[[], Callable], **jit_options):
        self._parts, self._make, self._options = parts, make, jit_options
        self._plain = None
        self._by_signature: dict[tuple, Callable] = {}
        self._by_fast: dict[tuple, Callable] = {}

    def _jit_plain(self):
        import jax

        if self._plain is None:
            self._plain = jax.jit(self._make(), **self._options)
        return self._plain

    def _load_or_export(self, args: tuple, sig: tuple) -> Callable:
        import jax
        from jax import export

        configure_jax()
        folder = _usable_dir("export")
        if folder is None:
            return self._jit_plain()
        key = _key(self._parts + (repr(sig),))
        path = folder / f"{key}.bin"
        # each file starts with its own key: a file of another key (renamed, rotated, copied) is not loaded
        header = key.encode() + b"\0"
        try:
            data = path.read_bytes()
            if not data.startswith(header):
                raise ValueError(f"{path} holds another program")
            exported = export.deserialize(bytearray(data[len(header):]))
        except Exception:  # noqa: BLE001 - absent, unreadable, another key's or from another JAX: export again
            try:
                exported = export.export(self._jit_plain())(*args)
                blob = header + exported.serialize()
            except Exception:  # noqa: BLE001 - a program JAX cannot export: plain jit, uncached
                return self._jit_plain()
            try:
                fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
                with os.fdopen(fd, "wb") as f:
                    f.write(blob)
                os.replace(tmp, path)
            except OSError:
                pass
        return jax.jit(exported.call, **self._options)

    def __call__(self, *args):
        import jax

        # a cheap key first (the pytree, each leaf's type, shape and dtype, and whether 64-bit types are on,
        # which together decide the signature): callers in loops pay a dictionary lookup, not the
        # signature's dtype canonicalisation per leaf
        leaves, tree = jax.tree.flatten(args)
        fast = (tree, bool(jax.config.jax_enable_x64),
                tuple((type(a), getattr(a, "shape", None), getattr(a, "dtype", None)) for a in leaves))
        fn = self._by_fast.get(fast)
        if fn is None:
            sig = _signature(args)
            fn = self._by_signature.get(sig)
            if fn is None:
                fn = self._by_signature[sig] = self._load_or_export(args, sig)
            self._by_fast[fast] = fn
        return fn(*args)
