"""Fleet planning: several models with their traffic and targets on several chip types with caps and prices.

``cm.plan(FLEET)`` picks, for every model, the chip type, mode, configuration and replicas that
minimise the fleet's USD per hour within the caps: the serving optimiser gives each (model, chip
type) pair its fewest-chips deployment, and a mixed-integer program (HiGHS through
``scipy.optimize.milp``) assigns the models (docs/fleet.md).
"""

from .._lazy import lazy_getattr

__all__ = ["Fleet", "ModelDemand", "ChipSupply", "load_fleet", "plan", "FleetPlan", "ModelPlan", "ChipPlan",
           "Candidate"]

_LAZY = {
    "Fleet": "spec", "ModelDemand": "spec", "ChipSupply": "spec", "load_fleet": "spec",
    "plan": "plan", "FleetPlan": "plan", "ModelPlan": "plan", "ChipPlan": "plan", "Candidate": "candidates",
}

__getattr__ = lazy_getattr(__name__, _LAZY)
