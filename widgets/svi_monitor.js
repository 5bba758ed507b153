// The SVI monitor: an ELBO (loss) curve with log scale and smoothing, parameter traces, the
// Step / Run / Pause / Reset buttons, and markers for non-finite steps. Points arrive in
// batched "append" messages; the traits hold the history once a stretch of steps ends (at most
// a fixed number of points, evenly spaced: `num_steps` counts the steps, kept or not).
// Messages that arrive before the view renders are buffered in initialize(). The axes come from
// Python with the data; drawChart and svgElement are widgets/axes.js, put in front of this file.

// anywidget hands initialize() and each render() different proxies of one model: the state
// they share lives here, keyed by the widget's _uid trait.
const STATES = new Map();

function initialize({ model }) {
  const state = { steps: [], losses: [], count: 0, params: {}, paramSteps: [], axes: {}, views: new Set() };
  STATES.set(model.get("_uid"), state);
  const fromTraits = () => {
    state.steps = [...model.get("steps")];
    state.losses = model.get("losses").map((x) => (x === null ? NaN : x));
    state.count = model.get("num_steps");
    state.params = {};
    state.paramSteps = [...model.get("param_steps")];
    state.axes = model.get("axes");
    for (const [name, traces] of Object.entries(model.get("params"))) {
      state.params[name] = {};
      for (const [element, values] of Object.entries(traces)) state.params[name][element] = [...values];
    }
  };
  fromTraits();
  model.on("change:steps", () => { fromTraits(); state.views.forEach((draw) => draw()); });
  model.on("msg:custom", (msg) => {
    if (msg.type === "append") {
      state.steps.push(...msg.steps);
      state.losses.push(...msg.losses.map((x) => (x === null ? NaN : x)));
      state.count += msg.steps.length;
      state.paramSteps.push(msg.steps[msg.steps.length - 1]);
      if (msg.axes) state.axes = msg.axes;
      for (const [name, summary] of Object.entries(msg.params || {})) {
        state.params[name] = state.params[name] || {};
        for (const [element, value] of Object.entries(summary)) {
          (state.params[name][element] = state.params[name][element] || []).push(value);
        }
      }
    } else if (msg.type === "reset") {
      state.steps = []; state.losses = []; state.count = 0; state.params = {}; state.paramSteps = []; state.axes = {};
    }
    state.views.forEach((draw) => draw());
  });
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

function render({ model, el }) {
  if (!STATES.has(model.get("_uid"))) initialize({ model });
  const state = STATES.get(model.get("_uid"));
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
  root.append(title, info, buttons, options, chart, caption, paramBox, marks);

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
  }

  state.views.add(draw);
  for (const name of ["status", "nonfinite", "log_scale", "smoothing", "title", "params"]) model.on(`change:${name}`, draw);
  draw();
  return () => state.views.delete(draw);
}

export default { initialize, render };
