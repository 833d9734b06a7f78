"""From an answer to a launch command: ``costmodel optimize ... --emit vllm|sglang|trtllm`` and
``Solution.launch(engine)`` / ``ServingSolution.launch(engine)``.

:func:`launch` reads the answer into a :class:`LaunchPlan` (:mod:`.plan`) and writes it with the chosen
engine's own flags (:mod:`.commands`), each in the flag list of the engine version it states
(:mod:`.flags`).
"""

from .commands import launch_command
from .flags import ENGINES, engine_flags
from .plan import LaunchPlan, Pool, plan_of

__all__ = ["ENGINES", "LaunchPlan", "Pool", "engine_flags", "launch", "launch_command", "plan_of"]


def launch(solution, engine: str, model: str | None = None) -> str:
    """The launch commands of a feasible answer of ``optimize`` or ``optimize_serving`` for ``engine``."""
    return launch_command(plan_of(solution, model), engine)
