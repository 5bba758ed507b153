// The MCMC monitor: a row per chain (progress, draws/s, step size, tree depth, divergences,
// colour by state), live log-density and trace plots per chain, running R-hat / ESS, each latent
// element's density per chain and rank plot (recomputed in Python about once a second and sent
// whole, with their axes), and a Stop button. Updates arrive in batched "update" messages; the
// traits hold the final state (the plots' histories at most a fixed number of iterations, evenly
// spaced: `lp_iterations` says which). The axes come from Python with the data. The state of a
// widget, kept from messages that come before any view renders too, the redraws and the charts
// are the shared base's (widgets/monitor_base.js, put in front of this file): this file says
// what is particular.

const COLORS = ["steelblue", "darkorange", "seagreen", "crimson", "purple", "goldenrod", "teal", "gray"];
const STATE_COLORS = { warmup: "#fff6d5", sample: "#e3f1ff", done: "#e4f7e4", stopped: "#eeeeee", diverging: "#ffe0e0" };

// What a view shows, kept per widget (see monitorWidget in widgets/monitor_base.js).
function emptyState() {
  return { chains: [], lp: [], lpIterations: [], traces: {}, traceIterations: [], axes: {}, marginals: {}, rhat: null, ess: null, status: "waiting" };
}

function fromTraits(state, model) {
  state.chains = model.get("chains");
  state.lp = model.get("lp").map((values) => [...values]);
  state.lpIterations = [...model.get("lp_iterations")];
  state.traces = {};
  for (const [name, chains] of Object.entries(model.get("traces"))) state.traces[name] = chains.map((v) => [...v]);
  state.traceIterations = [...model.get("trace_iterations")];
  state.axes = model.get("axes");
  state.marginals = model.get("marginals");
  state.rhat = model.get("rhat");
  state.ess = model.get("ess");
  state.status = model.get("status");
}

function applyMessage(state, msg) {
  if (msg.type !== "update") return;
  state.chains = msg.chains;
  if (state.status !== "stopping") state.status = "running";
  msg.lp.forEach((values, c) => { (state.lp[c] = state.lp[c] || []).push(...values); });
  state.lpIterations.push(...msg.lp_iterations);
  for (const [name, values] of Object.entries(msg.trace || {})) {
    state.traces[name] = state.traces[name] || values.map(() => []);
    values.forEach((v, c) => state.traces[name][c].push(v));
  }
  state.traceIterations.push(msg.trace_iteration);
  if (msg.axes) state.axes = msg.axes;
  if (msg.marginals) state.marginals = msg.marginals;
  if ("rhat" in msg) state.rhat = msg.rhat;
  if ("ess" in msg) state.ess = msg.ess;
}

// One svg: a curve per chain (null, a non-finite value, is left out) against the iterations
// x(i); the axes are Python's.
function plot(className, chains, x, xAxis, yAxis) {
  const svg = svgElement("svg", { class: className });
  svg.style.display = "block";
  const series = chains.map((values, c) => ({ length: values.length, x, y: (i) => values[i], color: COLORS[c % COLORS.length] }));
  drawChart(svg, 360, 100, xAxis, yAxis, series);
  return svg;
}

// One element's marginals: its label, a density curve per chain, and the rank plot (a step
// line per chain over equal bins of the ranks 1..chains*draws).
function marginalBox(element, bins, draws) {
  const box = document.createElement("div");
  box.className = "ppl-marginal";
  box.dataset.site = element.site;
  box.dataset.label = element.label;
  const density = svgElement("svg", { class: "ppl-density" });
  const grid = element.grid;
  drawChart(density, 240, 100, element.axes.x, element.axes.y, element.density.map((values, c) => ({ length: grid.length, x: (i) => grid[i], y: (i) => values[i], color: COLORS[c % COLORS.length] })));
  const ranks = svgElement("svg", { class: "ppl-ranks" });
  const width = (element.density.length * draws) / bins;
  const edge = (i) => (Math.floor(i / 2) + (i % 2)) * width;
  drawChart(ranks, 240, 100, element.axes.rank_x, element.axes.rank_y, element.ranks.map((counts, c) => ({ length: 2 * counts.length, x: edge, y: (i) => counts[Math.floor(i / 2)], color: COLORS[c % COLORS.length] })));
  const label = document.createElement("div");
  label.textContent = element.label;
  box.append(label, density, ranks);
  return box;
}

// One view in el; returns its draw().
function view({ model, el, state }) {
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
    const diag = typeof state.rhat === "number" && typeof state.ess === "number" ? ` · R-hat ${state.rhat.toFixed(3)} · ESS ${Math.round(state.ess)}` : "";
    const error = model.get("error") ? ` · ${model.get("error")}` : "";
    status.textContent = ` ${state.status}${diag}${error} `;
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
      const cells = [chain.chain, `${chain.iteration}/${chain.total}`, Number(chain.draws_per_s).toFixed(1), Number(chain.step_size).toPrecision(3), chain.tree_depth ?? "", chain.divergences, chain.state];
      for (const value of cells) {
        const td = document.createElement("td");
        td.textContent = String(value);
        tr.appendChild(td);
      }
      rows.appendChild(tr);
    }
    plots.replaceChildren();
    const lpBox = document.createElement("div");
    lpBox.append(document.createTextNode("log density"), plot("ppl-lp", state.lp, (i) => state.lpIterations[i], state.axes.iteration, state.axes.lp));
    plots.appendChild(lpBox);
    const traceX = (i) => state.traceIterations[i];
    for (const [name, chains] of Object.entries(state.traces)) {
      const box = document.createElement("div");
      box.dataset.site = name;
      box.append(document.createTextNode(name), plot("ppl-trace", chains, traceX, state.axes.iteration, state.axes.traces?.[name]));
      plots.appendChild(box);
    }
    const elements = state.marginals.elements || [];
    if (elements.length) {
      const title = document.createElement("div");
      title.textContent = `marginal density per chain and rank plot (${state.marginals.draws} draws per chain)`;
      plots.appendChild(title);
      for (const element of elements) plots.appendChild(marginalBox(element, state.marginals.bins, state.marginals.draws));
    }
  }

  return draw;
}

export default monitorWidget({
  state: emptyState,
  fromTraits,
  resync: ["chains"],
  follow: {
    marginals: (state, model) => { state.marginals = model.get("marginals"); },
    status: (state, model) => { state.status = model.get("status"); },
  },
  redrawOn: ["title"],
  message: applyMessage,
  view,
});
