// costmodel explorer: the controls, readouts and figures, all from window.costmodel.evaluate.
(function () {
  "use strict";
  const cm = window.costmodel, D = cm.data, chart = window.costmodelChart;
  const $ = (id) => document.getElementById(id);
  const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"];
  const BATCHES = Array.from({length: 49}, (_, i) => 2 ** (i / 4));          // 1 .. 4096
  const CONTEXTS = Array.from({length: 41}, (_, i) => 2 ** (7 + i / 3));     // 128 .. ~1.3M
  const FRONTIER_TP = [1, 2, 4, 8];

  function option(select, value, text) {
    const o = document.createElement("option");
    o.value = value; o.textContent = text;
    select.appendChild(o);
  }

  function fmtSeconds(s) {
    if (!Number.isFinite(s)) return "-";
    if (s >= 1) return `${s.toPrecision(3)} s`;
    if (s >= 1e-3) return `${(s * 1e3).toPrecision(3)} ms`;
    return `${(s * 1e6).toPrecision(3)} us`;
  }
  const fmtNum = (v) => (Number.isFinite(v) ? v.toLocaleString("en-US", {maximumSignificantDigits: 4}) : "-");
  const fmtGB = (b) => `${(b / 1e9).toPrecision(3)} GB`;

  function setup() {
    for (const name of Object.keys(D.models)) option($("model"), name, name);
    for (const name of Object.keys(D.chips)) option($("hardware"), name, name);
    option($("weights"), "", "model's own");
    for (const f of Object.keys(D.formats.bytes)) { option($("weights"), f, f); option($("kv"), f, f); }
    for (const k of ["tp", "pp", "ep"]) for (const v of D.degrees[k]) option($(k), v, v);
    for (const p of D.profiles) option($("efficiency"), p, p);
    const compare = $("compare");
    Object.keys(D.chips).forEach((name) => {
      const label = document.createElement("label");
      const box = document.createElement("input");
      box.type = "checkbox"; box.value = name; box.checked = ["h100-sxm", "h200", "b200", "mi300x"].includes(name);
      box.addEventListener("change", update);
      label.appendChild(box); label.appendChild(document.createTextNode(` ${name}`));
      compare.appendChild(label);
    });
    const d = D.defaults;
    $("model").value = d.model; $("hardware").value = d.hardware;
    $("weights").value = d.weights || ""; $("kv").value = d.kv || D.kv_default;
    $("tp").value = d.tp; $("pp").value = d.pp; $("ep").value = d.ep;
    $("efficiency").value = d.efficiency;
    setLog("batch", d.batch); setLog("context", d.context);
    $("prompt").value = ""; $("prompt").placeholder = "= context";
    $("output").value = 1024;
    for (const id of ["model", "hardware", "weights", "kv", "tp", "pp", "ep", "efficiency", "prompt", "output"]) {
      $(id).addEventListener("input", update);
    }
    for (const id of ["batch", "context"]) {
      $(id).addEventListener("input", () => { $(`${id}-value`).value = Math.round(2 ** Number($(id).value)); update(); });
      $(`${id}-value`).addEventListener("change", () => { setLog(id, Number($(`${id}-value`).value)); update(); });
    }
    update();
  }

  function setLog(id, v) {
    $(id).value = Math.log2(Math.max(1, v));
    $(`${id}-value`).value = v;
  }

  function config() {
    return {
      model: $("model").value, hardware: $("hardware").value,
      weights: $("weights").value || null, kv: $("kv").value,
      tp: Number($("tp").value), pp: Number($("pp").value), ep: Number($("ep").value),
      batch: Number($("batch-value").value), context: Number($("context-value").value),
      prompt: $("prompt").value === "" ? null : Number($("prompt").value),
      efficiency: $("efficiency").value,
    };
  }

  function greySplits(c) {
    let valid = [];
    try { valid = cm.validSplits(c.model, c.hardware); } catch (e) { return; }
    for (const k of ["tp", "pp", "ep"]) {
      for (const o of $(k).options) {
        const v = Number(o.value);
        o.disabled = !valid.some((s) => s[k] === v && ["tp", "pp", "ep"].every((j) => j === k || s[j] === c[j]));
      }
    }
  }

  function show(id, text) { $(id).textContent = text; }

  function readouts(c) {
    const p = cm.evaluate(c);
    show("out-step", fmtSeconds(p.step_time_s));
    show("out-tps", `${fmtNum(p.tokens_per_s)} tok/s`);
    show("out-user", `${fmtNum(p.tokens_per_s_per_user)} tok/s`);
    show("out-cost", `$${p.usd_per_mtok.toPrecision(4)}`);
    show("out-energy", p.power_w_per_chip === null ? "no published board power for this chip"
      : `${fmtNum(p.power_w_per_chip)} W per chip, ${p.joules_per_output_token.toPrecision(3)} J per output token`);
    show("out-bound", p.bound);
    show("out-memory", `${fmtGB(p.memory_bytes_per_chip)} of ${fmtGB(p.usable_bytes_per_chip)}`);
    show("out-fits", p.fits ? "yes" : "no: use more chips, a smaller batch or context, or lower precision");
    $("out-fits").className = p.fits ? "ok" : "bad";
    show("out-maxbatch", p.max_batch >= 1 ? fmtNum(Math.floor(p.max_batch)) : "0 (the weights alone do not fit)");
    show("out-chips", String(p.chips));
    const s = cm.staticBatch(c, Number($("output").value));
    if (s === null) {
      show("out-static", "windowed attention: its decode sum has no closed form here (costmodel predict --static-batch)");
    } else {
      show("out-static", `TTFT ${fmtSeconds(s.ttft_s)}, TPOT ${s.tpot_s === null ? "-" : fmtSeconds(s.tpot_s)}, `
        + `end to end ${fmtSeconds(s.e2e_latency_s)} (${fmtNum(s.requests_per_s)} requests/s)`);
    }
    return p;
  }

  function frontier(c, chip) {
    const pts = [];
    for (const tp of FRONTIER_TP) {
      let ok = true;
      try { cm.resolve(Object.assign({}, c, {hardware: chip, tp, pp: 1, ep: 1})); } catch (e) { ok = false; }
      if (!ok) continue;
      for (const b of BATCHES) {
        const p = cm.evaluate(Object.assign({}, c, {hardware: chip, tp, pp: 1, ep: 1, batch: b}));
        if (p.fits) pts.push([p.tokens_per_s_per_user, p.usd_per_mtok]);
      }
    }
    pts.sort((a, b) => b[0] - a[0]);  // fastest first: keep a point cheaper than every faster one
    const out = [];
    let best = Infinity;
    for (const q of pts) if (q[1] < best) { best = q[1]; out.push(q); }
    return out.reverse();
  }

  function figures(c, p) {
    const chips = Array.from($("compare").querySelectorAll("input:checked")).map((b) => b.value);
    chart.draw($("fig-frontier"), {
      series: chips.map((h, i) => ({name: h, color: COLORS[i % COLORS.length], points: frontier(c, h)})),
      xlabel: "tokens/s per user", ylabel: "USD per million output tokens", xlog: true, ylog: true,
      mark: p.fits ? [p.tokens_per_s_per_user, p.usd_per_mtok] : undefined,
    });
    const rows = BATCHES.map((b) => [b, cm.evaluate(Object.assign({}, c, {batch: b}))]);
    const term = (k, name, color, dash) => ({name, color, dash, points: rows.map(([b, q]) => [b, k(q) * 1e3])});
    chart.draw($("fig-breakdown"), {
      series: [
        term((q) => q.step_time_s, "step time", "#000000"),
        term((q) => q.breakdown_s.compute, "compute", "#ff7f0e", "5 3"),
        term((q) => q.breakdown_s.weights, "weight fetch", "#1f77b4", "5 3"),
        term((q) => q.breakdown_s.kv, "KV fetch", "#17becf", "5 3"),
        term((q) => q.breakdown_s.communication, "communication", "#9467bd", "2 2"),
        term((q) => q.breakdown_s.overhead, "overhead", "#7f7f7f", "2 2"),
      ],
      xlabel: "batch (sequences per replica)", ylabel: "time per step (ms)", xlog: true, ylog: true,
      mark: [c.batch, p.step_time_s * 1e3],
    });
    const mem = CONTEXTS.map((s) => [s, cm.evaluate(Object.assign({}, c, {context: s, prompt: null})).memory_bytes_per_chip / 1e9]);
    chart.draw($("fig-memory"), {
      series: [{name: "memory per chip (weights + KV + activations)", color: "#1f77b4", points: mem},
               {name: "usable HBM per chip", color: "#d62728", dash: "6 3", points: mem.map(([s]) => [s, p.usable_bytes_per_chip / 1e9])}],
      xlabel: "context (tokens per sequence)", ylabel: "GB per chip", xlog: true, ylog: true,
      mark: [c.context, p.memory_bytes_per_chip / 1e9],
    });
  }

  function update() {
    const c = config();
    greySplits(c);
    try {
      const p = readouts(c);
      figures(c, p);
      $("error").textContent = "";
      $("error").hidden = true;
    } catch (e) {
      if (!(e instanceof cm.ConfigError)) throw e;
      $("error").textContent = e.message;
      $("error").hidden = false;
      for (const id of ["out-step", "out-tps", "out-user", "out-cost", "out-bound", "out-memory", "out-fits",
                        "out-maxbatch", "out-chips", "out-static"]) show(id, "-");
    }
  }

  document.addEventListener("DOMContentLoaded", setup);
})();
