// The trace inspector: a table of sites and a line per plate. Text goes in through textContent,
// never innerHTML, so site names and reprs cannot inject markup.
const COLUMNS = ["site", "kind", "distribution", "batch", "event", "value", "log_prob", "plates", "enum"];

function cell(tag, text) {
  const node = document.createElement(tag);
  node.textContent = text;
  return node;
}

// The plate diagram: each plate a box labelled with its name and size, holding its sites (and
// the plates nested in it: a plate whose sites all sit in another plate is drawn inside it);
// observed sites are filled, latent ones hollow, as in the usual graphical-model notation.
const SVG = "http://www.w3.org/2000/svg";

function svgNode(tag, attributes, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

function plateDiagram(sites, plates) {
  const shown = sites.filter((site) => ["sample", "observed", "determ."].includes(site.kind));
  const kind = Object.fromEntries(shown.map((site) => [site.site, site.kind]));
  const inside = (inner, outer) => inner !== outer && inner.sites.length > 0 && inner.sites.every((name) => outer.sites.includes(name)) && outer.sites.length > inner.sites.length;
  const parent = new Map(plates.map((plate) => [plate.name, plates.filter((other) => inside(plate, other)).sort((a, b) => a.sites.length - b.sites.length)[0]]));
  const children = (outer) => plates.filter((plate) => parent.get(plate.name) === outer);
  const own = (plate) => plate.sites.filter((name) => name in kind && !children(plate).some((child) => child.sites.includes(name)));
  const NODE = 70, PAD = 12, TITLE = 18;

  function size(plate) {
    const nested = children(plate).map(size);
    const width = Math.max(own(plate).length * NODE, 0) + nested.reduce((sum, s) => sum + s.width + PAD, 0) + PAD;
    const height = Math.max(NODE, ...nested.map((s) => s.height)) + TITLE + PAD;
    return { width: Math.max(width, 120), height };
  }

  function drawSite(svg, name, x, y) {
    const group = svgNode("g", { class: "ppl-node", "data-site": name });
    group.appendChild(svgNode("circle", { cx: x + NODE / 2, cy: y + NODE / 2 - 8, r: 14, fill: kind[name] === "observed" ? "#bbb" : "white", stroke: "black" }));
    group.appendChild(svgNode("text", { x: x + NODE / 2, y: y + NODE / 2 + 20, "text-anchor": "middle", "font-size": 11 }, name));
    svg.appendChild(group);
  }

  function drawPlate(svg, plate, x, y) {
    const { width, height } = size(plate);
    const box = svgNode("g", { class: "ppl-plate", "data-plate": plate.name });
    box.appendChild(svgNode("rect", { x, y, width, height, rx: 6, fill: "none", stroke: "#555" }));
    box.appendChild(svgNode("text", { x: x + 6, y: y + 13, "font-size": 11 }, `${plate.name} (${plate.size}, dim ${plate.dim})`));
    svg.appendChild(box);
    let cursor = x + PAD / 2;
    for (const name of own(plate)) { drawSite(svg, name, cursor, y + TITLE); cursor += NODE; }
    for (const child of children(plate)) { drawPlate(svg, child, cursor, y + TITLE); cursor += size(child).width + PAD; }
  }

  const top = plates.filter((plate) => parent.get(plate.name) === undefined);
  const loose = Object.keys(kind).filter((name) => !plates.some((plate) => plate.sites.includes(name)));
  const width = loose.length * NODE + top.reduce((sum, plate) => sum + size(plate).width + PAD, 0) + PAD;
  const height = Math.max(NODE, ...top.map((plate) => size(plate).height)) + PAD;
  const svg = svgNode("svg", { width, height, class: "ppl-plate-diagram", role: "img" });
  let cursor = PAD / 2;
  for (const name of loose) { drawSite(svg, name, cursor, TITLE); cursor += NODE; }
  for (const plate of top) { drawPlate(svg, plate, cursor, PAD / 2); cursor += size(plate).width + PAD; }
  return svg;
}

function render({ model, el }) {
  const root = document.createElement("div");
  root.className = "ppl-inspector";
  el.appendChild(root);

  function draw() {
    root.replaceChildren();
    root.appendChild(cell("b", model.get("title") || "Trace"));
    const table = document.createElement("table");
    table.className = "ppl-table";
    const sites = model.get("sites");
    // The enum column only when something is enumerated (as in format_shapes).
    const columns = COLUMNS.filter((name) => name !== "enum" || sites.some((site) => site.enum));
    const head = document.createElement("tr");
    for (const name of [...columns, "log_prob sum"]) head.appendChild(cell("th", name));
    table.appendChild(head);
    for (const site of sites) {
      const row = document.createElement("tr");
      row.dataset.site = site.site;
      row.dataset.kind = site.kind;
      for (const name of columns) row.appendChild(cell("td", String(site[name] ?? "")));
      const total = site.log_prob_sum;
      // A number, or "-inf"/"nan" as text (JSON has no such numbers), or null when not computed.
      row.appendChild(cell("td", typeof total === "number" ? total.toPrecision(4) : String(total ?? "")));
      table.appendChild(row);
    }
    root.appendChild(table);
    root.appendChild(plateDiagram(model.get("sites"), model.get("plates")));
  }

  draw();
  model.on("change:sites", draw);
  model.on("change:plates", draw);
  model.on("change:title", draw);
}

export default { render };
