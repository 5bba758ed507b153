// The MCMC monitor: a row per chain (progress, draws/s, step size, tree depth, divergences,
// colour by state), live log-density and trace plots per chain, running R-hat / ESS, and a Stop
// button. Updates arrive in batched "update" messages; the traits hold the final state.
// Messages that arrive before the view renders are buffered in initialize().

const SVG = "http://www.w3.org/2000/svg";
const COLORS = ["steelblue", "darkorange", "seagreen", "crimson", "purple", "goldenrod", "teal", "gray"];
const STATE_COLORS = { warmup: "#fff6d5", sample: "#e3f1ff", done: "#e4f7e4", stopped: "#eeeeee", diverging: "#ffe0e0" };

function initialize({ model }) {
  const state = { chains: [], lp: [], traces: {}, rhat: null, ess: null, status: "waiting", views: new Set() };
  model._ppl = state;
  const fromTraits = () => {
    state.chains = model.get("chains");
    state.lp = model.get("lp").map((values) => [...values]);
    state.traces = {};
    for (const [name, chains] of Object.entries(model.get("traces"))) state.traces[name] = chains.map((v) => [...v]);
    state.rhat = model.get("rhat");
    state.ess = model.get("ess");
    state.status = model.get("status");
  };
  fromTraits();
  model.on("change:chains", () => { fromTraits(); state.views.forEach((draw) => draw()); });
  model.on("change:status", () => { state.status = model.get("status"); state.views.forEach((draw) => draw()); });
  model.on("msg:custom", (msg) => {
    if (msg.type === "update") {
      state.chains = msg.chains;
      state.status = "running";
      msg.lp.forEach((values, c) => { (state.lp[c] = state.lp[c] || []).push(...values); });
      for (const [name, values] of Object.entries(msg.trace || {})) {
        state.traces[name] = state.traces[name] || values.map(() => []);
        values.forEach((v, c) => state.traces[name][c].push(v));
      }
      if ("rhat" in msg) state.rhat = msg.rhat;
      if ("ess" in msg) state.ess = msg.ess;
    } else if (msg.type === "finished") {
      state.status = msg.status;
    }
    state.views.forEach((draw) => draw());
  });
}

function plot(series, width, height) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("width", String(width));
  svg.setAttribute("height", String(height));
  const all = series.flat().filter(Number.isFinite);
  if (all.length === 0) return svg;
  const lo = Math.min(...all), hi = Math.max(...all);
  const n = Math.max(...series.map((s) => s.length));
  series.forEach((values, c) => {
    const line = document.createElementNS(SVG, "polyline");
    line.setAttribute("fill", "none");
    line.setAttribute("stroke", COLORS[c % COLORS.length]);
    line.setAttribute("points", values.map((v, i) => `${((i / Math.max(n - 1, 1)) * width).toFixed(1)},${(hi > lo ? height - ((v - lo) / (hi - lo)) * height : height / 2).toFixed(1)}`).join(" "));
    svg.appendChild(line);
  });
  return svg;
}

function render({ model, el }) {
  if (!model._ppl) initialize({ model });
  const state = model._ppl;
  const root = document.createElement("div");
  root.className = "ppl-mcmc-monitor";
  el.appendChild(root);
  const title = document.createElement("b");
  const status = document.createElement("span");
  const stop = document.createElement("button");
  stop.textContent = "Stop";
  stop.dataset.action = "stop";
  stop.addEventListener("click", () => model.send({ type: "command", command: "stop" }));
  const rows = document.createElement("table");
  rows.className = "ppl-chains";
  const plots = document.createElement("div");
  root.append(title, status, stop, rows, plots);

  function draw() {
    title.textContent = model.get("title") || "MCMC";
    const diag = state.rhat === null || state.rhat === undefined ? "" : ` · R-hat ${state.rhat.toFixed(3)} · ESS ${Math.round(state.ess)}`;
    status.textContent = ` ${state.status}${diag} `;
    root.dataset.status = state.status;
    root.dataset.chains = String(state.chains.length);
    rows.replaceChildren();
    const head = document.createElement("tr");
    for (const name of ["chain", "progress", "draws/s", "step size", "tree depth", "divergences", "state"]) {
      const th = document.createElement("th");
      th.textContent = name;
      head.appendChild(th);
    }
    rows.appendChild(head);
    for (const chain of state.chains) {
      const tr = document.createElement("tr");
      tr.className = "ppl-chain";
      tr.dataset.chain = String(chain.chain);
      tr.style.background = STATE_COLORS[chain.divergences ? "diverging" : chain.phase] || "";
      const cells = [chain.chain, `${chain.iteration}/${chain.total}`, chain.draws_per_s.toFixed(1), Number(chain.step_size).toPrecision(3), chain.tree_depth ?? "", chain.divergences, chain.state];
      for (const value of cells) {
        const td = document.createElement("td");
        td.textContent = String(value);
        tr.appendChild(td);
      }
      rows.appendChild(tr);
    }
    plots.replaceChildren();
    const lpBox = document.createElement("div");
    lpBox.append(document.createTextNode("log density"), plot(state.lp, 320, 60));
    plots.appendChild(lpBox);
    for (const [name, chains] of Object.entries(state.traces)) {
      const box = document.createElement("div");
      box.dataset.site = name;
      box.append(document.createTextNode(name), plot(chains, 320, 60));
      plots.appendChild(box);
    }
  }

  state.views.add(draw);
  model.on("change:title", draw);
  draw();
  return () => state.views.delete(draw);
}

export default { initialize, render };
