// costmodel explorer: the model. Assembles the compiled functions' inputs from the embedded catalog, as
// costmodel.inputs.Scenario.inputs does, and evaluates the closed forms printed from SymPy
// (costmodel-data.js). No number here is a formula of its own.
(function () {
  "use strict";
  const D = window.COSTMODEL_DATA;
  const F = window.COSTMODEL_FUNCS;

  class ConfigError extends Error {
    constructor(message) { super(message); this.name = "ConfigError"; }
  }

  function choose(table, name, what) {
    if (typeof name !== "string" || !Object.prototype.hasOwnProperty.call(table, name)) {
      throw new ConfigError(`unknown ${what} ${JSON.stringify(name)}; valid: ${Object.keys(table).join(", ")}`);
    }
    return table[name];
  }

  function number(name, value, lo, hi) {
    const v = Number(value);
    if (typeof value === "boolean" || value === "" || !Number.isFinite(v) || v < lo || v > hi) {
      throw new ConfigError(`${name} must be a number in [${lo}, ${hi}], got ${JSON.stringify(value)}`);
    }
    return v;
  }

  function degree(name, value) {
    const allowed = D.degrees[name];
    const v = Number(value);
    if (!allowed.includes(v)) throw new ConfigError(`${name} must be one of ${allowed.join(", ")}, got ${JSON.stringify(value)}`);
    return v;
  }

  function format(name, value, what) {
    if (!Object.prototype.hasOwnProperty.call(D.formats.bytes, value)) {
      throw new ConfigError(`unknown ${what} ${JSON.stringify(value)}; allowed: ${Object.keys(D.formats.bytes).join(", ")}`);
    }
    return value;
  }

  // the configuration with the command line's defaults filled in, validated
  function resolve(config) {
    const c = Object.assign({}, D.defaults);
    for (const [k, v] of Object.entries(config || {})) {
      if (!Object.prototype.hasOwnProperty.call(D.defaults, k)) {
        throw new ConfigError(`unknown key ${JSON.stringify(k)}; keys: ${Object.keys(D.defaults).join(", ")}`);
      }
      if (v !== undefined && v !== null) c[k] = v;
    }
    const model = choose(D.models, c.model, "model");
    const chip = choose(D.chips, c.hardware, "hardware");
    if (!D.profiles.includes(c.efficiency)) {
      throw new ConfigError(`efficiency must be one of ${D.profiles.join(", ")} here (other profiles: the command line), got ${JSON.stringify(c.efficiency)}`);
    }
    const given = c.weights !== undefined && c.weights !== null;
    const weights = format("weights", given ? c.weights : model.native_precision, "weight precision");
    // a model stored in a format the chip has no math for is dequantised (costmodel.inputs.math_the_chip_runs)
    const math = given ? D.formats.default_math[weights] : chip.default_math[weights];
    if (!chip.maths.includes(math)) {
      throw new ConfigError(`${chip.name} has no ${math} math; it computes in ${chip.maths.join(", ")}. Store weights in a format it computes in`);
    }
    const kv = format("kv", c.kv === undefined || c.kv === null ? D.kv_default : c.kv, "KV precision");
    const [tp, pp, ep] = ["tp", "pp", "ep"].map((k) => degree(k, c[k]));
    const lim = D.limits;
    const batch = number("batch", c.batch, ...lim.batch);
    const context = number("context", c.context, ...lim.context);
    const prompt = c.prompt === undefined || c.prompt === null ? context : number("prompt", c.prompt, ...lim.prompt);
    const g = D.degrees;
    const bit = (g.tp.indexOf(tp) * g.pp.length + g.pp.indexOf(pp)) * g.ep.length + g.ep.indexOf(ep);
    if (model.splits[chip.name][bit] !== "1") {
      throw new ConfigError(`${model.name} does not split as tp=${tp} pp=${pp} ep=${ep} on ${chip.name}; `
        + `valid splits: ${validSplits(model.name, chip.name).slice(0, 12).map((s) => `tp=${s.tp} pp=${s.pp} ep=${s.ep}`).join("; ")}`);
    }
    return {model, chip, weights, math, kv, tp, pp, ep, batch, context, prompt, efficiency: c.efficiency};
  }

  function validSplits(modelName, chipName) {
    const mask = D.models[modelName].splits[chipName];
    const g = D.degrees, out = [];
    let i = 0;
    for (const tp of g.tp) for (const pp of g.pp) for (const ep of g.ep) {
      if (mask[i++] === "1") out.push({tp, pp, ep});
    }
    return out;
  }

  // Scenario.inputs(): the model's, the chip's at its math (after the profile), the profile's, then the configuration
  function inputs(r, phase, overrides) {
    const prof = r.chip.profiles[r.efficiency][phase];
    const bytes = D.formats.bytes;
    const hw = prof.math[r.math];
    return Object.assign({}, r.model.inputs, hw, prof.efficiency, D.formats.weight_only[r.weights][r.math],
                         r.chip.mesh_shares[String(r.tp)], {
      usd_per_chip_hour: hw.usd_per_chip_hour,
      weight_bytes: bytes[r.weights],
      kv_bytes: bytes[r.kv],
      activation_bytes: bytes[D.activations],
      dispatch_bytes: bytes[D.activations],
      batch: r.batch, context: r.context, prompt: r.prompt,
      tp: r.tp, pp: r.pp, ep: r.ep,
      replicas: D.parallel.replicas,
      redundant_experts: D.parallel.redundant_experts,
      expert_imbalance: D.parallel.expert_imbalance,
    }, D.electricity, overrides || {});
  }

  // costmodel.prediction.bound_of: the largest term, the first on a tie
  function boundOf(o) {
    const terms = [["compute", o.compute_s], ["memory", o.weights_s + o.kv_s], ["communication", o.communication_s]];
    let best = terms[0];
    for (const t of terms.slice(1)) if (t[1] > best[1]) best = t;
    return best[0];
  }

  function outputs(config, overrides) {
    const r = resolve(config);
    const o = F[r.model.structure].decode(inputs(r, "decode", overrides));
    return {r, o};
  }

  // window.costmodel.evaluate: the keys of `costmodel predict --json` the page shows (and the step's terms)
  function evaluate(config) {
    const {r, o} = outputs(config);
    const power = r.chip.has_power;  // a chip without a published board power has no energy (null, as predict)
    return {
      step_time_s: o.step_time_s,
      tokens_per_s: o.tokens_per_s,
      tokens_per_s_per_user: o.tokens_per_s_per_user,
      usd_per_mtok: o.usd_per_mtok,
      memory_bytes_per_chip: o.memory_bytes_per_chip,
      usable_bytes_per_chip: o.usable_bytes_per_chip,
      fits: o.memory_bytes_per_chip <= o.usable_bytes_per_chip,
      max_batch: o.max_batch,
      max_context: o.max_context,
      bound: boundOf(o),
      chips: o.chips,
      power_w_per_chip: power ? o.power_w_per_chip : null,
      joules_per_output_token: power ? o.joules_per_token : null,
      breakdown_s: {compute: o.compute_s, weights: o.weights_s, kv: o.kv_s, communication: o.communication_s,
                    overhead: o.overhead_s},
    };
  }

  // A static batch of `batch` requests of `prompt` tokens in and `output` out (cm.serve with Load.static):
  // the batch's prefill, then output - 1 decode steps summed in closed form (docs/serving.md §19.1)
  function staticBatch(config, output) {
    const r = resolve(config);
    const fns = F[r.model.structure];
    if (!fns.static) return null;  // windowed attention: no closed form of the sum (costmodel predict --static-batch)
    const O = number("output", output, 1, D.limits.context[1]);
    const ttft = fns.prefill(inputs(r, "prefill")).step_time_s;
    const steps = Math.max(O - 1, 0);
    const decode = steps > 0 ? fns.static(inputs(r, "decode", {
      context: r.prompt, steps, prefill_tokens: 0, prefill_position: 0, draft_length: 0, acceptance: 0,
    })).static_decode_s : 0;
    return {ttft_s: ttft, tpot_s: steps > 0 ? decode / steps : null, e2e_latency_s: ttft + decode,
            requests_per_s: r.batch / (ttft + decode)};
  }

  window.costmodel = {evaluate, staticBatch, resolve, validSplits, outputs, ConfigError, data: D};
})();
