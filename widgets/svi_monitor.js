// The SVI monitor: an ELBO (loss) curve with log scale and smoothing, parameter traces, the
// Step / Run / Pause / Reset buttons, and markers for non-finite steps. Points arrive in
// batched "append" messages; the traits hold the history once a stretch of steps ends (at most
// a fixed number of points, evenly spaced: `num_steps` counts the steps, kept or not).
// The axes come from Python with the data. The state of a widget, kept from messages that come
// before any view renders too, the redraws and the charts are the shared base's
// (widgets/monitor_base.js, put in front of this file): this file says what is particular.
// The posterior panel (widgets/posterior_panel.py) comes whole, in an "append" message now and
// then and in the `posterior` trait: each latent site's guide density (a line; a vertical line
// for a point mass; narrow bars for a discrete site) with its prior behind it (shaded).

// What a view shows, kept per widget (see monitorWidget in widgets/monitor_base.js).
function emptyState() {
  return { steps: [], losses: [], count: 0, params: {}, paramSteps: [], axes: {}, posterior: {} };
}

// JSON has no NaN: a non-finite loss comes as null.
const lossValues = (values) => values.map((x) => (x === null ? NaN : x));

function fromTraits(state, model) {
  state.steps = [...model.get("steps")];
  state.losses = lossValues(model.get("losses"));
  state.count = model.get("num_steps");
  state.params = {};
  state.paramSteps = [...model.get("param_steps")];
  state.axes = model.get("axes");
  state.posterior = model.get("posterior");
  for (const [name, traces] of Object.entries(model.get("params"))) {
    state.params[name] = {};
    for (const [element, values] of Object.entries(traces)) state.params[name][element] = [...values];
  }
}

function applyMessage(state, msg) {
  if (msg.type === "append") {
    state.steps.push(...msg.steps);
    state.losses.push(...lossValues(msg.losses));
    state.count += msg.steps.length;
    state.paramSteps.push(msg.steps[msg.steps.length - 1]);
    if (msg.axes) state.axes = msg.axes;
    if (msg.posterior) state.posterior = msg.posterior;
    for (const [name, summary] of Object.entries(msg.params || {})) {
      state.params[name] = state.params[name] || {};
      for (const [element, value] of Object.entries(summary)) {
        (state.params[name][element] = state.params[name][element] || []).push(value);
      }
    }
  } else if (msg.type === "reset") {
    Object.assign(state, emptyState());
  }
}

// Exponential smoothing of the curve as drawn: on a log scale, of the log values.
function smooth(values, alpha, log) {
  if (!alpha) return values;
  const out = [];
  let level = NaN;
  for (const v of values) {
    if (!Number.isFinite(v)) { out.push(v); continue; }
    const u = log ? Math.log10(v) : v;
    level = Number.isFinite(level) ? alpha * level + (1 - alpha) * u : u;
    out.push(log ? 10 ** level : level);
  }
  return out;
}

function range(values) {
  let low = Infinity, high = -Infinity;  // a loop: Math.min(...big) overflows the call stack
  for (const v of values) { if (v < low) low = v; if (v > high) high = v; }
  return [low, high];
}

const PRIOR_FILL = "#d0d0d0", GUIDE_COLOUR = "steelblue";

// One latent site's panel on svg: the prior shaded, the guide over it; the same marks as the
// static SVG (_marks in widgets/posterior_panel.py).
function drawDensity(svg, width, height, panel) {
  drawChart(svg, width, height, panel.x_axis, panel.y_axis, []);
  const { px, py } = chartFrame(width, height, panel.x_axis, panel.y_axis);
  const rect = (left, right, top, fill, curve) => svgElement("rect", {
    "data-curve": curve, x: left.toFixed(1), y: top.toFixed(1), width: (right - left).toFixed(1),
    height: (py(0) - top).toFixed(1), fill,
  });
  const { x: xs, prior, guide } = panel;
  if (panel.kind === "discrete") {
    const w = panel.width;
    xs.forEach((x, i) => svg.appendChild(rect(px(x - 0.5), px(x + w - 0.5), py(prior[i]), PRIOR_FILL, "prior")));
    if (guide) xs.forEach((x, i) => svg.appendChild(rect(px(x - 0.5 + w / 4), px(x + w - 0.5 - w / 4), py(guide[i]), GUIDE_COLOUR, "guide")));
  } else {
    const outline = xs.map((x, i) => `${px(x).toFixed(1)},${py(prior[i]).toFixed(1)}`);
    outline.push(`${px(xs[xs.length - 1]).toFixed(1)},${py(0).toFixed(1)}`, `${px(xs[0]).toFixed(1)},${py(0).toFixed(1)}`);
    svg.appendChild(svgElement("polygon", { "data-curve": "prior", fill: PRIOR_FILL, stroke: "none", points: outline.join(" ") }));
    if (guide) {
      const line = xs.map((x, i) => `${px(x).toFixed(1)},${py(guide[i]).toFixed(1)}`).join(" ");
      svg.appendChild(svgElement("polyline", { "data-curve": "guide", fill: "none", stroke: GUIDE_COLOUR, "stroke-width": 1.5, points: line }));
    }
  }
  if (panel.point !== null && panel.point !== undefined) {
    const x = px(panel.point).toFixed(1);
    const top = py(panel.y_axis.ticks[panel.y_axis.ticks.length - 1]).toFixed(1);
    svg.appendChild(svgElement("line", { "data-curve": "guide-point", x1: x, x2: x, y1: py(0).toFixed(1), y2: top, stroke: GUIDE_COLOUR, "stroke-width": 1.5 }));
  }
}

// The posterior panel into box: a caption, a small chart per site (element), what was left out.
function drawPosterior(box, posterior) {
  box.replaceChildren();
  const panels = posterior.panels || [];
  box.dataset.step = posterior.step === undefined ? "" : String(posterior.step);
  box.dataset.panels = String(panels.length);
  if (posterior.error) {
    const error = document.createElement("p");
    error.className = "ppl-posterior-error";
    error.textContent = `posterior view: ${posterior.error}`;
    box.appendChild(error);
    return;
  }
  if (!panels.length) return;
  const caption = document.createElement("div");
  caption.textContent = `posterior (guide, line) and prior (shaded) at step ${posterior.step}`;
  box.appendChild(caption);
  for (const panel of panels) {
    const figure = document.createElement("div");
    figure.className = "ppl-marginal";
    figure.dataset.site = panel.name;
    figure.dataset.kind = panel.kind;
    figure.style.display = "inline-block";
    figure.style.margin = "0 4px";
    const title = document.createElement("div");
    title.textContent = panel.name;
    const svg = svgElement("svg", { class: "ppl-density" });
    svg.style.display = "block";
    drawDensity(svg, 200, 110, panel);
    figure.append(title, svg);
    if (panel.note) {
      const note = document.createElement("small");
      note.textContent = panel.note;
      figure.appendChild(note);
    }
    box.appendChild(figure);
  }
  if ((posterior.not_shown || []).length) {
    const more = document.createElement("p");
    more.textContent = `not shown: ${posterior.not_shown.join("; ")}`;
    box.appendChild(more);
  }
}

// One view in el; returns its draw().
function view({ model, el, state }) {
  const root = document.createElement("div");
  root.className = "ppl-svi-monitor";
  el.appendChild(root);

  const title = document.createElement("b");
  const info = document.createElement("span");
  info.className = "ppl-status";
  const buttons = document.createElement("div");
  for (const action of ["step", "run", "pause", "reset"]) {
    const button = document.createElement("button");
    button.textContent = action[0].toUpperCase() + action.slice(1);
    button.dataset.action = action;
    button.addEventListener("click", () => model.send({ type: "command", command: action }));
    buttons.appendChild(button);
  }
  const options = document.createElement("label");
  const logBox = document.createElement("input");
  logBox.type = "checkbox";
  logBox.dataset.control = "log";
  logBox.addEventListener("change", () => { model.set("log_scale", logBox.checked); model.save_changes(); });
  const smoothing = document.createElement("input");
  smoothing.type = "range";
  smoothing.min = "0";
  smoothing.max = "0.99";
  smoothing.step = "0.01";
  smoothing.dataset.control = "smoothing";
  smoothing.addEventListener("input", () => { model.set("smoothing", Number(smoothing.value)); model.save_changes(); });
  options.append(logBox, " log scale  smoothing ", smoothing);
  options.style.display = "block";
  const caption = document.createElement("div");  // the exact ranges, and which scale
  caption.className = "ppl-range";
  const chart = svgElement("svg", { class: "ppl-elbo" });
  chart.style.display = "block";  // its own line, under the controls
  const paramBox = document.createElement("div");
  const marks = document.createElement("ul");
  const posteriorBox = document.createElement("div");
  posteriorBox.className = "ppl-posterior";
  let drawnPosterior = null;
  root.append(title, info, buttons, options, chart, caption, paramBox, marks, posteriorBox);

  function draw() {
    title.textContent = model.get("title") || "SVI";
    logBox.checked = model.get("log_scale");
    const status = model.get("status");
    const last = state.losses.length ? state.losses[state.losses.length - 1] : NaN;
    info.textContent = ` ${status} · ${state.count} steps` + (Number.isFinite(last) ? ` · loss ${last.toPrecision(6)}` : "");
    root.dataset.points = String(state.steps.length);
    root.dataset.status = status;
    smoothing.value = String(model.get("smoothing"));
    // Python sends no log axis when some loss is zero or negative: the chart stays linear.
    const logScale = model.get("log_scale") && Boolean(state.axes.loss_log);
    const ys = smooth(state.losses, model.get("smoothing"), logScale);
    drawChart(chart, 480, 160, state.axes.steps, logScale ? state.axes.loss_log : state.axes.loss, [
      { length: ys.length, x: (i) => state.steps[i], y: (i) => ys[i], color: "steelblue" },
    ]);
    const [low, high] = range(state.losses.filter(Number.isFinite));
    const [firstStep, lastStep] = range(state.steps);
    const scale = logScale ? " (log scale)" : model.get("log_scale") ? " (linear: some losses are not positive)" : "";
    caption.textContent = Number.isFinite(low)
      ? `loss ${low.toPrecision(4)} to ${high.toPrecision(4)}${scale} · steps ${firstStep} to ${lastStep}`
      : "";
    paramBox.replaceChildren();
    for (const [name, traces] of Object.entries(state.params)) {
      const box = document.createElement("div");
      box.className = "ppl-param";
      box.dataset.param = name;
      box.append(document.createTextNode(name));
      const svg = svgElement("svg", { class: "ppl-trace" });
      svg.style.display = "block";
      // A parameter first seen late has fewer values than there are recorded steps: its
      // values belong to the last ones.
      const steps = state.paramSteps;
      const series = Object.values(traces).map((values) => ({
        length: values.length, x: (i) => steps[steps.length - values.length + i], y: (i) => values[i], color: "darkorange",
      }));
      drawChart(svg, 240, 80, state.axes.steps, state.axes.params?.[name], series);
      box.appendChild(svg);
      paramBox.appendChild(box);
    }
    marks.replaceChildren();
    for (const mark of model.get("nonfinite")) {
      const item = document.createElement("li");
      item.className = "ppl-nonfinite";
      item.textContent = `step ${mark.step}: ${mark.message}`;
      marks.appendChild(item);
    }
    // Redrawn only when new curves came (the loss batches come far more often).
    if (drawnPosterior !== state.posterior) drawPosterior(posteriorBox, (drawnPosterior = state.posterior));
  }

  return draw;
}

export default monitorWidget({
  state: emptyState,
  fromTraits,
  resync: ["steps"],
  follow: { posterior: (state, model) => { state.posterior = model.get("posterior"); } },
  redrawOn: ["status", "nonfinite", "log_scale", "smoothing", "title", "params"],
  message: applyMessage,
  view,
});
