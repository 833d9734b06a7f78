"""The batch API and the packed fast path give the one-at-a-time answers."""

import numpy as np
import pytest

import costmodel as cm
from costmodel.compile import compiled
from costmodel.symbolic import Rules


def _configs():
    out = []
    for model, par in (("llama-3-70b", cm.Parallel(tp=8)), ("deepseek-v3", cm.Parallel(tp=8, ep=8)),
                       ("llama-3-8b", cm.Parallel())):
        for batch, phase in ((1, "decode"), (64, "decode"), (4, "prefill")):
            out.append({"model": model, "hardware": "h100-sxm", "parallel": par,
                        "workload": cm.Workload(batch=batch, context=4096, prompt=1024, phase=phase)})
    out.append({"model": "llama-3-8b", "hardware": "h200", "precision": cm.Precision(weights="fp8"),
                "efficiency": "calibrated", "usd_per_chip_hour": 3.5})
    return out


def test_predict_many_equals_predict_column_by_column():
    configs = _configs()
    cols = cm.predict_many(configs)
    for i, c in enumerate(configs):
        p = cm.predict(c["model"], c["hardware"], c.get("workload", cm.Workload()),
                       parallel=c.get("parallel", cm.Parallel()), precision=c.get("precision", cm.Precision()),
                       efficiency=c.get("efficiency", cm.DEFAULT_EFFICIENCY), usd_per_chip_hour=c.get("usd_per_chip_hour"))
        for k, v in p.values.items():
            assert cols[k][i] == v, (i, k)
        assert bool(cols["fits"][i]) == p.fits and cols["bound"][i] == p.bound


def test_packed_values_equal_the_dict_function():
    sc = cm.scenario("deepseek-v3", "b200", cm.Workload(batch=32, context=30000), cm.Parallel(tp=8, ep=8))
    model = compiled(sc.model.structure, Rules())
    fast, full = model.values(sc.inputs()), model(sc.inputs())
    assert set(fast) == set(full)
    for k, v in full.items():
        np.testing.assert_allclose(fast[k], float(v), rtol=1e-13, atol=0, err_msg=k)


@pytest.mark.parametrize("configs, match", [
    ([], "at least one"),
    ([{"model": "llama-3-8b"}], r"configs\[0\]: missing hardware"),
    ([{"model": "llama-3-8b", "hardware": "h100-sxm", "batch": 3}], r"configs\[0\]: unknown keys batch"),
    (["llama-3-8b"], r"configs\[0\] must be a mapping"),
    ([{"model": "llama-3-8b", "hardware": "h100-sxm"},
      {"model": "llama-3-8b", "hardware": "h100-sxm", "parallel": cm.Parallel(tp=3)}], r"configs\[1\]: .*tp=3"),
])
def test_predict_many_bad_input_names_the_configuration(configs, match):
    with pytest.raises(cm.CostModelError, match=match):
        cm.predict_many(configs)
