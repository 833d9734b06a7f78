"""The persistent caches: identical results, broken entries rebuilt, the directory only where it belongs."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import costmodel as cm
from helpers import env_with_cache
from costmodel import cache
from costmodel.compile import CompiledModel
from costmodel.relax import SHARPNESS, RelaxedModel
from costmodel.symbolic import Rules

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(cm.__file__).resolve().parent
STRUCTURE = cm.load_model("deepseek-v3").structure  # MLA + MoE: the largest expressions


@pytest.fixture
def cache_in(tmp_path):
    """The caches moved to ``tmp_path`` for one test, then back to the session's."""
    cache.set_cache(directory=tmp_path)
    yield tmp_path
    cache.set_cache()


def _inputs():
    sc = cm.scenario("deepseek-v3", "h100-sxm", cm.Workload(batch=48, context=3000), cm.Parallel(tp=8, ep=8))
    return sc.inputs()


def _values(model, x):
    return {k: np.asarray(v) for k, v in model(x).items()}


def test_cached_functions_equal_fresh_ones_bit_for_bit(cache_in):
    x = _inputs()
    first = CompiledModel(STRUCTURE, Rules())  # builds and stores
    files = list((cache_in / "sympy").glob("*.json"))
    assert len(files) == 1
    second = CompiledModel(STRUCTURE, Rules())  # loads the stored source
    cache.set_cache(enabled=False, directory=cache_in)
    fresh = CompiledModel(STRUCTURE, Rules())
    assert second.input_names == fresh.input_names and second.output_names == fresh.output_names
    assert second.source == fresh.source
    a, b, c = _values(first, x), _values(second, x), _values(fresh, x)
    for k in c:
        assert np.array_equal(a[k], c[k]) and np.array_equal(b[k], c[k]), k
    cache.set_cache(directory=cache_in)
    r1, r2 = (RelaxedModel(STRUCTURE, Rules(), ("step_time_s", "usd_per_mtok")) for _ in range(2))
    cache.set_cache(enabled=False)
    r3 = RelaxedModel(STRUCTURE, Rules(), ("step_time_s", "usd_per_mtok"))
    xr = x | {SHARPNESS: 8.0}
    for k, v in r3.raw(xr).items():
        assert np.array_equal(np.asarray(r1.raw(xr)[k]), np.asarray(v))
        assert np.array_equal(np.asarray(r2.raw(xr)[k]), np.asarray(v))


@pytest.mark.parametrize("damage", ["garbage", "empty", "wrong key", "bad source", "missing field", "bad global"])
def test_a_broken_or_stale_entry_is_rebuilt(cache_in, damage):
    x = _inputs()
    want = _values(CompiledModel(STRUCTURE, Rules()), x)
    (path,) = (cache_in / "sympy").glob("*.json")
    entry = json.loads(path.read_text())
    broken = {
        "garbage": "\x00{not json",
        "empty": "",
        "wrong key": json.dumps(entry | {"key": "0" * 64}),  # e.g. another version's entry under this name
        "bad source": json.dumps(entry | {"source": "def _lambdifygenerated(:\n"}),
        "missing field": json.dumps({k: v for k, v in entry.items() if k != "inputs"}),
        "bad global": json.dumps(entry | {"globals": [["jax.numpy", "no_such_function"]]}),
    }[damage]
    path.write_text(broken)
    got = _values(CompiledModel(STRUCTURE, Rules()), x)
    assert all(np.array_equal(got[k], want[k]) for k in want)
    assert json.loads(path.read_text()) == entry  # rewritten


def test_key_changes_with_structure_rules_and_version(monkeypatch):
    base = ("model", repr(STRUCTURE), repr(Rules()))
    assert cache._key(base) == cache._key(base)
    assert cache._key(base) != cache._key(("model", repr(cm.load_model("llama-3-8b").structure), repr(Rules())))
    assert cache._key(base) != cache._key(("model", repr(STRUCTURE), repr(Rules(phase="prefill"))))
    before = cache._key(base)
    monkeypatch.setattr(cm, "__version__", "0.0.0-other")
    assert cache._key(base) != before


def test_an_unwritable_cache_directory_costs_only_speed(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    cache.set_cache(directory=blocker / "cache")
    try:
        out = CompiledModel(STRUCTURE, Rules())(_inputs())
        assert np.isfinite(float(out["step_time_s"]))
    finally:
        cache.set_cache()


def _cli(args, env, cwd):
    return subprocess.run([sys.executable, "-m", "costmodel", *args], capture_output=True, text=True, cwd=cwd,
                          env=env)


def _env(tmp_path, **extra):
    env = {k: v for k, v in os.environ.items() if k not in (cache.ENV_DIR, cache.ENV_OFF)}
    env |= {"PYTHONPATH": str(ROOT), "HOME": str(tmp_path / "home"), "XDG_CACHE_HOME": str(tmp_path / "xdg")}
    return env | extra


def _tree(path: Path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.rglob("*") if "__pycache__" not in p.parts}


def test_the_directory_is_the_users_cache_made_on_first_compile_and_never_in_the_package_or_cwd(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    package_before = _tree(PACKAGE)
    env = _env(tmp_path)
    assert _cli(["list", "hardware"], env, work).returncode == 0
    assert not (tmp_path / "xdg").exists()  # nothing compiled: nothing created
    args = ["predict", "--model", "llama-3-8b", "--json"]
    first = _cli(args, env, work)
    assert first.returncode == 0, first.stderr
    made = tmp_path / "xdg" / "costmodel"
    assert {p.name for p in made.iterdir()} == {"xla", "sympy"}
    assert any((made / "xla").iterdir()) and any((made / "sympy").iterdir())
    assert list(work.iterdir()) == [] and _tree(PACKAGE) == package_before
    # every cache file damaged: the next run still answers the same, exit 0
    for f in made.rglob("*"):
        if f.is_file():
            f.write_bytes(b"\x00damaged")
    second = _cli(args, env, work)
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout) == json.loads(first.stdout)
    # --no-cache and COSTMODEL_NO_CACHE: no directory at all
    moved = tmp_path / "moved"
    off = _cli(["--no-cache", *args], env | {cache.ENV_DIR: str(moved)}, work)
    assert off.returncode == 0 and json.loads(off.stdout) == json.loads(first.stdout)
    assert _cli(args, env | {cache.ENV_DIR: str(moved), cache.ENV_OFF: "1"}, work).returncode == 0
    assert not moved.exists()


def test_cached_jit_equals_plain_jit_and_rebuilds_a_damaged_program(cache_in):
    import jax
    import jax.numpy as jnp

    from costmodel.cache import CachedJit

    def make():
        return lambda x, y: {"s": jnp.sin(x) * y["a"], "n": jnp.sum(x)}

    args = (np.linspace(0.0, 1.0, 5), {"a": np.float64(2.5)})
    want = jax.jit(make())(*args)
    first = CachedJit(("test",), make)(*args)  # traces, exports and stores
    (path,) = (cache_in / "export").glob("*.bin")
    calls = []
    second = CachedJit(("test",), lambda: calls.append(1) or make())(*args)  # loads: never builds the function
    assert calls == []
    path.write_bytes(b"\x00damaged")
    third = CachedJit(("test",), make)(*args)
    assert path.stat().st_size > 100  # exported again
    for got in (first, second, third):
        assert all(np.array_equal(np.asarray(got[k]), np.asarray(want[k])) for k in want)


def test_exported_programs_of_other_keys_are_never_loaded(cache_in):
    """Entries rotated among themselves (each a valid program of another key) are rebuilt, not run."""
    import jax.numpy as jnp

    from costmodel.cache import CachedJit

    one = (np.linspace(0.0, 1.0, 5),)
    two = (np.linspace(0.0, 1.0, 5), {"b": np.float64(3.0)})
    f = CachedJit(("rot", "f"), lambda: (lambda x: {"f": jnp.cos(x)}))
    g = CachedJit(("rot", "g"), lambda: (lambda x, y: {"g": x * y["b"]}))
    want_f, want_g = f(*one), g(*two)
    pf, pg = sorted((cache_in / "export").glob("*.bin"), key=lambda p: p.stat().st_mtime)
    blob_f, blob_g = pf.read_bytes(), pg.read_bytes()
    pf.write_bytes(blob_g)
    pg.write_bytes(blob_f)  # each file now holds the other key's program
    got_f = CachedJit(("rot", "f"), lambda: (lambda x: {"f": jnp.cos(x)}))(*one)
    got_g = CachedJit(("rot", "g"), lambda: (lambda x, y: {"g": x * y["b"]}))(*two)
    assert np.array_equal(np.asarray(got_f["f"]), np.asarray(want_f["f"]))
    assert np.array_equal(np.asarray(got_g["g"]), np.asarray(want_g["g"]))
    head = lambda b: b.split(b"\0", 1)[0]  # noqa: E731 - each file's own key
    assert head(pf.read_bytes()) == head(blob_f) != head(blob_g) == head(pg.read_bytes())  # rebuilt in place


def test_the_optimiser_answers_the_same_from_its_cached_programs(cache_in):
    from costmodel.optimizer import gradient
    from costmodel.optimizer.problem import make_problem

    problem = make_problem("llama-3-8b", "h100-sxm", context=4096, tpot_s=0.02, max_chips=8)
    runs = []
    for enabled in (False, True, True):  # plain jit; exported and stored; loaded
        cache.set_cache(enabled=enabled, directory=cache_in)
        gradient._solver.cache_clear()
        runs.append(gradient.relaxed_solve(problem))
    gradient._solver.cache_clear()
    assert len(list((cache_in / "export").glob("*.bin"))) == 1
    for r in runs[1:]:
        assert np.array_equal(r.u, runs[0].u) and np.array_equal(r.objective, runs[0].objective)


def test_a_start_from_cached_programs_never_imports_sympy(tmp_path):
    """``import costmodel`` imports neither SymPy nor JAX; the default ``costmodel optimize`` builds its
    expressions with SymPy once, and a later process answers from the cached source and programs (every
    global of the generated code is named in the entry) without importing SymPy, with the same output."""
    env = env_with_cache(tmp_path)
    code = ("import sys; from costmodel.cli import main; rc = main(['optimize']); "
            "print('SYMPY', 'sympy' in sys.modules); sys.exit(rc)")
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True,
                           cwd=tmp_path).stdout for _ in range(2)]
    assert runs[0].rstrip().endswith("SYMPY True") and runs[1].rstrip().endswith("SYMPY False")
    drop = lambda out: [ln for ln in out.splitlines() if "solved by" not in ln and "SYMPY" not in ln]  # noqa: E731
    assert drop(runs[0]) == drop(runs[1])
    light = subprocess.run([sys.executable, "-c", "import sys, costmodel; print(sorted(m for m in ('sympy', 'jax') "
                            "if m in sys.modules))"], capture_output=True, text=True, env=env, check=True)
    assert light.stdout.strip() == "[]"


def test_xla_entries_rotated_among_themselves_are_recompiled_not_run(tmp_path):
    """JAX's own cache files name their key but do not hold it: an entry moved onto another key's name
    would run another program. Each entry here starts with its key, so a rotated one is a miss, compiled
    again, and the answer is unchanged (before: ``AssertionError: (16, 3)`` on every later run)."""
    env = env_with_cache(tmp_path)
    code = ("import sys; from costmodel.cli import main; "
            "sys.exit(main(['optimize', '--model', 'llama-3-8b', '--max-chips', '8', '--context', '4096']))")

    def run():
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-2000:]
        return [ln for ln in done.stdout.splitlines() if "solved by" not in ln]

    first = run()
    entries = sorted(p for p in (tmp_path / "xla").iterdir() if p.name.endswith("-cache"))
    assert len(entries) >= 2
    blobs = [p.read_bytes() for p in entries]
    for p, b in zip(entries, blobs[1:] + blobs[:1]):
        p.write_bytes(b)  # each file now holds the next key's program
    assert run() == first
    assert [p.read_bytes().split(b"\0", 2)[1] for p in entries] == [b.split(b"\0", 2)[1] for b in blobs]
