// The SVI monitor: an ELBO (loss) curve with log scale and smoothing, parameter traces, the
// Step / Run / Pause / Reset buttons, and markers for non-finite steps. Points arrive in
// batched "append" messages; the traits hold the whole history once a stretch of steps ends.
// Messages that arrive before the view renders are buffered in initialize().

const SVG = "http://www.w3.org/2000/svg";
// anywidget hands initialize() and each render() different proxies of one model: the state
// they share lives here, keyed by the widget's _uid trait.
const STATES = new Map();

function initialize({ model }) {
  const state = { steps: [], losses: [], params: {}, paramSteps: [], views: new Set() };
  STATES.set(model.get("_uid"), state);
  const fromTraits = () => {
    state.steps = [...model.get("steps")];
    state.losses = model.get("losses").map((x) => (x === null ? NaN : x));
    state.params = {};
    state.paramSteps = [...model.get("param_steps")];
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
      state.paramSteps.push(msg.steps[msg.steps.length - 1]);
      for (const [name, summary] of Object.entries(msg.params || {})) {
        state.params[name] = state.params[name] || {};
        for (const [element, value] of Object.entries(summary)) {
          (state.params[name][element] = state.params[name][element] || []).push(value);
        }
      }
    } else if (msg.type === "reset") {
      state.steps = []; state.losses = []; state.params = {}; state.paramSteps = [];
    }
    state.views.forEach((draw) => draw());
  });
}

function smooth(values, alpha) {
  if (!alpha) return values;
  const out = [];
  let level = NaN;
  for (const v of values) {
    if (!Number.isFinite(v)) { out.push(v); continue; }
    level = Number.isFinite(level) ? alpha * level + (1 - alpha) * v : v;
    out.push(level);
  }
  return out;
}

// At most this many points per curve: a long run is thinned before drawing.
const MAX_POINTS = 1000;

function range(values) {
  let low = Infinity, high = -Infinity;  // a loop: Math.min(...big) overflows the call stack
  for (const v of values) { if (v < low) low = v; if (v > high) high = v; }
  return [low, high];
}

function polyline(svg, xs, ys, width, height, color) {
  let finite = ys.map((y, i) => [xs[i], y]).filter(([, y]) => Number.isFinite(y));
  if (finite.length === 0) return;
  if (finite.length > MAX_POINTS) {
    const stride = finite.length / MAX_POINTS;
    finite = Array.from({ length: MAX_POINTS }, (_, i) => finite[Math.floor(i * stride)]);
  }
  const [x0, x1] = range(finite.map((p) => p[0]));
  const [y0, y1] = range(finite.map((p) => p[1]));
  const sx = (x) => (x1 > x0 ? ((x - x0) / (x1 - x0)) * width : width / 2);
  const sy = (y) => (y1 > y0 ? height - ((y - y0) / (y1 - y0)) * height : height / 2);
  const line = document.createElementNS(SVG, "polyline");
  line.setAttribute("fill", "none");
  line.setAttribute("stroke", color);
  line.setAttribute("points", finite.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(" "));
  svg.appendChild(line);
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
  const axes = document.createElement("div");
  axes.className = "ppl-axes";
  const chart = document.createElementNS(SVG, "svg");
  chart.setAttribute("width", "480");
  chart.setAttribute("height", "160");
  chart.classList.add("ppl-elbo");
  chart.style.display = "block";  // its own line, under the controls
  const paramBox = document.createElement("div");
  const marks = document.createElement("ul");
  root.append(title, info, buttons, options, chart, axes, paramBox, marks);

  function draw() {
    title.textContent = model.get("title") || "SVI";
    logBox.checked = model.get("log_scale");
    const status = model.get("status");
    const last = state.losses.length ? state.losses[state.losses.length - 1] : NaN;
    info.textContent = ` ${status} · ${state.steps.length} steps` + (Number.isFinite(last) ? ` · loss ${last.toPrecision(6)}` : "");
    root.dataset.points = String(state.steps.length);
    root.dataset.status = status;
    chart.replaceChildren();
    smoothing.value = String(model.get("smoothing"));
    const positive = state.losses.every((x) => !Number.isFinite(x) || x > 0);
    const logScale = model.get("log_scale") && positive;
    const ys = logScale ? state.losses.map(Math.log) : state.losses;
    polyline(chart, state.steps, smooth(ys, model.get("smoothing")), 480, 160, "steelblue");
    const [low, high] = range(state.losses.filter(Number.isFinite));
    const [firstStep, lastStep] = range(state.steps);
    const scale = logScale ? " (log scale)" : model.get("log_scale") ? " (linear: some losses are not positive)" : "";
    axes.textContent = Number.isFinite(low)
      ? `loss ${low.toPrecision(4)} to ${high.toPrecision(4)}${scale} · steps ${firstStep} to ${lastStep}`
      : "";
    paramBox.replaceChildren();
    for (const [name, traces] of Object.entries(state.params)) {
      const box = document.createElement("div");
      box.className = "ppl-param";
      box.dataset.param = name;
      box.append(document.createTextNode(name));
      const svg = document.createElementNS(SVG, "svg");
      svg.setAttribute("width", "160");
      svg.setAttribute("height", "40");
      const steps = state.paramSteps;
      for (const values of Object.values(traces)) {
        const xs = values.map((_, i) => steps[steps.length - values.length + i] ?? i);
        polyline(svg, xs, values, 160, 40, "darkorange");
      }
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
