// costmodel explorer: a small SVG line chart (log or linear axes, a legend, a marked point).
(function () {
  "use strict";
  const NS = "http://www.w3.org/2000/svg";
  const W = 520, H = 300, M = {left: 64, right: 14, top: 14, bottom: 44};

  function el(name, attrs, text) {
    const e = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function fmt(v) {
    const a = Math.abs(v);
    if (a === 0) return "0";
    if (a >= 1e9) return `${+(v / 1e9).toPrecision(3)}G`;
    if (a >= 1e6) return `${+(v / 1e6).toPrecision(3)}M`;
    if (a >= 1e4) return `${+(v / 1e3).toPrecision(3)}k`;
    return `${+v.toPrecision(3)}`;
  }

  function ticks(lo, hi, log) {
    if (log) {
      const out = [];
      for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) {
        for (const m of [1, 2, 5]) {
          const v = m * 10 ** e;
          if (v >= lo * 0.999 && v <= hi * 1.001) out.push(v);
        }
      }
      if (out.length > 8) return out.filter((v) => Math.abs(Math.log10(v) % 1) < 1e-9);
      return out;
    }
    const step = 10 ** Math.floor(Math.log10((hi - lo) / 4 || 1));
    const mult = [1, 2, 5, 10].find((m) => (hi - lo) / (m * step) <= 6);
    const s = mult * step, out = [];
    for (let v = Math.ceil(lo / s) * s; v <= hi + 1e-12; v += s) out.push(v);
    return out;
  }

  // draw(svg, {series: [{name, color, points: [[x, y], ...], dash}], xlabel, ylabel, xlog, ylog, mark: [x, y], hline})
  function draw(svg, spec) {
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    const pts = spec.series.flatMap((s) => s.points).concat(spec.mark ? [spec.mark] : [])
      .filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (!spec.xlog || x > 0) && (!spec.ylog || y > 0));
    if (spec.hline !== undefined) pts.push([pts.length ? pts[0][0] : 1, spec.hline]);
    if (!pts.length) {
      svg.appendChild(el("text", {x: W / 2, y: H / 2, "text-anchor": "middle", class: "empty"}, "nothing fits"));
      return;
    }
    let [x0, x1] = [Math.min(...pts.map((p) => p[0])), Math.max(...pts.map((p) => p[0]))];
    let [y0, y1] = [Math.min(...pts.map((p) => p[1])), Math.max(...pts.map((p) => p[1]))];
    if (spec.ylog) { y0 /= 1.3; y1 *= 1.3; } else { const d = (y1 - y0) * 0.08 || Math.abs(y1) * 0.1 || 1; y0 -= d; y1 += d; }
    if (spec.xlog) { x0 /= 1.1; x1 *= 1.1; } else { const d = (x1 - x0) * 0.04 || 1; x0 -= d; x1 += d; }
    if (!spec.ylog && spec.yzero) y0 = Math.min(0, y0);
    const t = (v, lo, hi, log) => (log ? (Math.log(v) - Math.log(lo)) / (Math.log(hi) - Math.log(lo)) : (v - lo) / (hi - lo));
    const X = (v) => M.left + t(v, x0, x1, spec.xlog) * (W - M.left - M.right);
    const Y = (v) => H - M.bottom - t(v, y0, y1, spec.ylog) * (H - M.top - M.bottom);
    const g = el("g", {class: "axes"});
    for (const v of ticks(x0, x1, spec.xlog)) {
      g.appendChild(el("line", {x1: X(v), x2: X(v), y1: M.top, y2: H - M.bottom, class: "grid"}));
      g.appendChild(el("text", {x: X(v), y: H - M.bottom + 14, "text-anchor": "middle"}, fmt(v)));
    }
    for (const v of ticks(y0, y1, spec.ylog)) {
      g.appendChild(el("line", {x1: M.left, x2: W - M.right, y1: Y(v), y2: Y(v), class: "grid"}));
      g.appendChild(el("text", {x: M.left - 6, y: Y(v) + 4, "text-anchor": "end"}, fmt(v)));
    }
    g.appendChild(el("rect", {x: M.left, y: M.top, width: W - M.left - M.right, height: H - M.top - M.bottom, class: "frame"}));
    g.appendChild(el("text", {x: (M.left + W - M.right) / 2, y: H - 8, "text-anchor": "middle", class: "label"}, spec.xlabel));
    g.appendChild(el("text", {x: 14, y: (M.top + H - M.bottom) / 2, "text-anchor": "middle", class: "label",
                              transform: `rotate(-90 14 ${(M.top + H - M.bottom) / 2})`}, spec.ylabel));
    svg.appendChild(g);
    const clip = `clip-${svg.id}`;
    const defs = el("defs");
    const cp = el("clipPath", {id: clip});
    cp.appendChild(el("rect", {x: M.left, y: M.top, width: W - M.left - M.right, height: H - M.top - M.bottom}));
    defs.appendChild(cp);
    svg.appendChild(defs);
    const plot = el("g", {"clip-path": `url(#${clip})`});
    if (spec.hline !== undefined) {
      plot.appendChild(el("line", {x1: M.left, x2: W - M.right, y1: Y(spec.hline), y2: Y(spec.hline), class: "hline"}));
    }
    for (const s of spec.series) {
      const ok = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (!spec.xlog || x > 0) && (!spec.ylog || y > 0));
      if (!ok.length) continue;
      const d = ok.map(([x, y], i) => `${i ? "L" : "M"}${X(x).toFixed(2)},${Y(y).toFixed(2)}`).join("");
      plot.appendChild(el("path", {d, stroke: s.color, fill: "none", "stroke-width": s.width || 2,
                                    "stroke-dasharray": s.dash || "none"}));
    }
    if (spec.mark && spec.mark.every(Number.isFinite)) {
      plot.appendChild(el("circle", {cx: X(spec.mark[0]), cy: Y(spec.mark[1]), r: 5, class: "mark"}));
    }
    svg.appendChild(plot);
    const legend = el("g", {class: "legend"});
    spec.series.forEach((s, i) => {
      const y = M.top + 12 + 14 * i;
      legend.appendChild(el("line", {x1: M.left + 8, x2: M.left + 26, y1: y - 4, y2: y - 4, stroke: s.color,
                                      "stroke-width": 2, "stroke-dasharray": s.dash || "none"}));
      legend.appendChild(el("text", {x: M.left + 30, y}, s.name));
    });
    svg.appendChild(legend);
  }

  window.costmodelChart = {draw};
})();
