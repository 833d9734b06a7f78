"""costmodel: a symbolic roofline cost model of LLM inference.

SymPy builds closed-form expressions for latency, throughput, memory and cost;
they are compiled to JAX functions (jit, vmap, grad) with every hardware, model
and workload number kept as an input.

Example:
    >>> import costmodel as cm
    >>> p = cm.predict("llama-3-8b", "h100-sxm", cm.Workload(batch=64, context=4096))
    >>> p.bound
    'memory'
"""

from ._lazy import lazy_getattr
from .config import DEFAULT_EFFICIENCY, IDEAL, Efficiency, Electricity, Parallel, Precision, Workload
from .engines import ENGINES, with_engine
from .errors import ConfigError, CostModelError, PrecisionError, SpecError, UnknownNameError
from .inputs import Scenario, scenario
from .serving.workload import Disaggregated, Load, Pool, Requests, Speculative
from .specs import (
    HardwareSpec,
    ModelSpec,
    list_hardware,
    list_models,
    load_hardware,
    load_model,
    model_from_hf_config,
)
from .symbolic import Rules

__version__ = "0.1.0"

# Names whose modules import JAX load on first use, so that `import costmodel`
# (and the SymPy-only `costmodel.symbolic`) stays light.
_LAZY = {
    "Prediction": "prediction",
    "evaluate": "prediction",
    "predict": "prediction",
    "predict_many": "prediction",
    "evaluate_many": "prediction",
    "set_cache": "cache",
    "load_profile": "calibrate",
    "list_profiles": "calibrate",
    "optimize": "optimizer",
    "Solution": "optimizer",
    "optimize_serving": "optimizer.serving",
    "max_rate": "optimizer.serving.max_rate",
    "MaxRateAnswer": "optimizer.serving.max_rate",
    "compare_hardware": "optimizer.across",
    "ServingSolution": "optimizer.serving",
    "sweep": "sweeps",
    "sensitivities": "derive.sensitivity",
    "write_report": "report",
    "SweepResult": "sweeps",
    "serve": "serving.api",
    "ServingPrediction": "serving.prediction",
    "plan": "fleet.plan",
    "FleetPlan": "fleet.plan",
    "load_fleet": "fleet.spec",
}


__getattr__ = lazy_getattr(__name__, _LAZY)

__all__ = [
    "DEFAULT_EFFICIENCY",
    "IDEAL",
    "ENGINES",
    "ConfigError",
    "CostModelError",
    "Disaggregated",
    "Efficiency",
    "Electricity",
    "FleetPlan",
    "HardwareSpec",
    "Load",
    "MaxRateAnswer",
    "ModelSpec",
    "Parallel",
    "Pool",
    "Precision",
    "PrecisionError",
    "Prediction",
    "Requests",
    "Rules",
    "Scenario",
    "ServingPrediction",
    "ServingSolution",
    "Solution",
    "Speculative",
    "SpecError",
    "SweepResult",
    "UnknownNameError",
    "Workload",
    "compare_hardware",
    "evaluate",
    "evaluate_many",
    "list_hardware",
    "list_models",
    "list_profiles",
    "with_engine",
    "load_hardware",
    "load_fleet",
    "load_model",
    "load_profile",
    "max_rate",
    "model_from_hf_config",
    "optimize",
    "optimize_serving",
    "plan",
    "predict",
    "predict_many",
    "scenario",
    "serve",
    "sweep",
    "sensitivities",
    "set_cache",
    "write_report",
]
