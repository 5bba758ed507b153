// The base both monitors share: the chart drawing and the widget lifecycle. widgets/esm.py puts
// it in front of each monitor's own part (see there why), so it has no imports or exports.
//
// Charts: the ticks and their labels come from Python (widgets/axes.py: an axis is {scale,
// ticks, labels}, its first and last ticks are the chart's range); this file only places them.
//
// Lifecycle (monitorWidget): anywidget calls the default export, a factory, once per widget.
// Its closure holds the widget's state, which initialize() fills from the traits and keeps up
// to date with the kernel's messages (those that come before any view renders included), and
// which every view of the widget (the same widget shown in several outputs) reads.

const SVG = "http://www.w3.org/2000/svg";
// The same layout as the static chart in widgets/axes.py.
const MARGIN = { left: 48, right: 10, top: 8, bottom: 20 };
const MAX_POINTS = 1000;  // per curve: a long run is thinned before drawing

function svgElement(name, attributes) {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
  return element;
}

// Where value lies on axis: 0 at its first tick, 1 at its last.
function fraction(axis, value) {
  const scale = axis.scale === "log" ? Math.log10 : Number;
  const low = scale(axis.ticks[0]);
  return (scale(value) - low) / (scale(axis.ticks[axis.ticks.length - 1]) - low);
}

// A chart's plotting box inside width x height, and px(x), py(y): where a value lands on it.
function chartFrame(width, height, xAxis, yAxis) {
  const box = { left: MARGIN.left, right: width - MARGIN.right, top: MARGIN.top, bottom: height - MARGIN.bottom };
  const px = (x) => box.left + fraction(xAxis, x) * (box.right - box.left);
  const py = (y) => box.bottom - fraction(yAxis, y) * (box.bottom - box.top);
  return { box, px, py };
}

// One axis: a path for its line and tick marks, a text per tick (the label as textContent, the
// value in data-value); data-axis, data-scale and data-ticks say what it is.
function axisGroup(name, axis, position, { left, bottom, right, top }) {
  const group = svgElement("g", { class: "ppl-axis" });
  group.dataset.axis = name;
  group.dataset.scale = axis.scale;
  group.dataset.ticks = String(axis.ticks.length);
  const places = axis.ticks.map((tick) => position(tick).toFixed(1));
  const d = name === "x"
    ? `M${left},${bottom}H${right}` + places.map((x) => `M${x},${bottom}v4`).join("")
    : `M${left},${top}V${bottom}` + places.map((y) => `M${left},${y}h-4`).join("");
  group.appendChild(svgElement("path", { d, fill: "none", stroke: "#888" }));
  axis.ticks.forEach((tick, i) => {
    const text = name === "x"
      ? svgElement("text", { x: places[i], y: bottom + 15, "text-anchor": "middle" })
      : svgElement("text", { x: left - 6, y: places[i], "text-anchor": "end", "dominant-baseline": "middle" });
    text.dataset.value = String(tick);
    text.textContent = axis.labels[i];
    group.appendChild(text);
  });
  return group;
}

// Redraw svg (width x height) with its axes and a polyline per series {length, x(i), y(i),
// color}; points whose y is not finite are left out. Nothing is drawn until both axes exist.
function drawChart(svg, width, height, xAxis, yAxis, series) {
  svg.replaceChildren();
  svg.setAttribute("width", String(width));
  svg.setAttribute("height", String(height));
  svg.setAttribute("font-size", "10");
  if (!xAxis || !yAxis) return;
  const { box, px, py } = chartFrame(width, height, xAxis, yAxis);
  svg.append(axisGroup("x", xAxis, px, box), axisGroup("y", yAxis, py, box));
  for (const { length, x, y, color } of series) {
    const stride = Math.max(1, Math.ceil(length / MAX_POINTS));
    const points = [];
    for (let i = 0; i < length; i += stride) {
      const value = y(i);
      if (Number.isFinite(value)) points.push(`${px(x(i)).toFixed(1)},${py(value).toFixed(1)}`);
    }
    svg.appendChild(svgElement("polyline", { fill: "none", stroke: color, points: points.join(" ") }));
  }
}

// The default export of a monitor's ESM: a factory that anywidget calls once per widget.
// parts says what differs between the monitors:
//   state(): the view state of a widget that has seen nothing yet;
//   fromTraits(state, model): the traits into state (at the start, and whenever a trait in
//     `resync` changes: Python wrote the whole history into the traits);
//   follow: {trait: (state, model) => ...}, the traits copied into state one by one;
//   redrawOn: the traits that views read straight from the model;
//   message(state, msg): one custom message from the kernel into state;
//   view({ model, el, state }): builds one view in el and returns its draw().
function monitorWidget({ state: empty, fromTraits, resync, follow = {}, redrawOn = [], message, view }) {
  return () => {
    const state = empty();
    const views = new Set();
    // A message comes up to 20 times a second and a sync changes several traits at once:
    // the views redraw once per animation frame, after whatever came in it.
    let pending = false;
    const redraw = () => {
      if (pending) return;
      pending = true;
      requestAnimationFrame(() => {
        pending = false;
        views.forEach((draw) => draw());
      });
    };
    return {
      initialize({ model }) {
        fromTraits(state, model);
        for (const name of resync) model.on(`change:${name}`, () => { fromTraits(state, model); redraw(); });
        for (const [name, take] of Object.entries(follow)) model.on(`change:${name}`, () => { take(state, model); redraw(); });
        for (const name of redrawOn) model.on(`change:${name}`, redraw);
        model.on("msg:custom", (msg) => { message(state, msg); redraw(); });
      },
      render({ model, el }) {
        const draw = view({ model, el, state });
        views.add(draw);
        draw();
        return () => views.delete(draw);
      },
    };
  };
}
