"""The flags of each engine's launch command, for one stated version, read from its own parser.

``flags/ENGINE.txt`` holds the header (engine, version, source, command), one long flag per line, and
``# choices --flag: a, b`` lines for flags with fixed values (see each file's header for how the list was
taken). :mod:`costmodel.launch.commands` writes only flags these lists hold (a test checks every one).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources

__all__ = ["ENGINES", "EngineFlags", "engine_flags"]

#: the engines a launch command can be written for
ENGINES = ("vllm", "sglang", "trtllm")


@dataclass(frozen=True)
class EngineFlags:
    """One engine version's launch flags.

    Attributes:
        engine, version, source, command: the file's header.
        flags: every long flag the parser defines.
        choices: ``flag -> allowed values`` where the parser fixes them.
        notes: the other ``# key: value`` header lines (e.g. ``yaml`` keys of an options file).
    """

    engine: str
    version: str
    source: str
    command: str
    flags: frozenset[str]
    choices: dict[str, tuple[str, ...]]
    notes: tuple[tuple[str, str], ...]


@functools.cache
def engine_flags(engine: str) -> EngineFlags:
    """The flag list of ``engine`` (one of :data:`ENGINES`)."""
    text = (resources.files(__package__) / "flags" / f"{engine}.txt").read_text(encoding="utf-8")
    head: dict[str, str] = {}
    flags, choices, notes = set(), {}, []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("# choices "):
            flag, _, values = line[len("# choices "):].partition(":")
            choices[flag.strip()] = tuple(v.strip() for v in values.split(",") if v.strip())
        elif line.startswith("#"):
            key, _, value = line[1:].partition(":")
            key = key.strip()
            if key in ("engine", "version", "source", "command") and key not in head:
                head[key] = value.strip()
            else:
                notes.append((key, value.strip()))
        elif line.startswith("-"):
            flags.add(line.split()[0])
    return EngineFlags(head.get("engine", engine), head.get("version", "?"), head.get("source", "?"),
                       head.get("command", "?"), frozenset(flags), choices, tuple(notes))
