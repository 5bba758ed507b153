// Charts with drawn axes, shared by the SVI and MCMC monitors. The ticks and their labels come
// from Python (widgets/axes.py: an axis is {scale, ticks, labels}, its first and last ticks are
// the chart's range); this file only places them. It has no imports or exports: widgets/axes.py
// puts it in front of each monitor's ESM (see esm_with_axes there for why).

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
  const box = { left: MARGIN.left, right: width - MARGIN.right, top: MARGIN.top, bottom: height - MARGIN.bottom };
  const px = (x) => box.left + fraction(xAxis, x) * (box.right - box.left);
  const py = (y) => box.bottom - fraction(yAxis, y) * (box.bottom - box.top);
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
