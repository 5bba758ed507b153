// The trace inspector: a table of sites and a line per plate. Text goes in through textContent,
// never innerHTML, so site names and reprs cannot inject markup.
const COLUMNS = ["site", "kind", "distribution", "batch", "event", "value", "log_prob", "plates", "enum"];

function cell(tag, text) {
  const node = document.createElement(tag);
  node.textContent = text;
  return node;
}

// The plate diagram, drawn where widgets/diagram.py placed things (the same layout as the HTML
// fallback and the JupyterLab extension; overlapping plates are drawn as overlapping boxes):
// each plate a box labelled with its name, size and dim; observed sites filled, latent ones
// hollow, as in the usual graphical-model notation.
const SVG = "http://www.w3.org/2000/svg";
const NODE_R = 16; // widgets/diagram.py's NODE_R

function svgNode(tag, attributes, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

function plateDiagram(sites, diagram) {
  const kind = Object.fromEntries(sites.map((site) => [site.site, site.kind]));
  const svg = svgNode("svg", { width: diagram.width || 0, height: diagram.height || 0, class: "ppl-plate-diagram", role: "img" });
  for (const box of diagram.plates || []) {
    const group = svgNode("g", { class: "ppl-plate", "data-plate": box.plate });
    group.appendChild(svgNode("rect", { x: box.x, y: box.y, width: box.width, height: box.height, rx: 6, fill: "none", stroke: "#555" }));
    group.appendChild(svgNode("text", { x: box.x + 6, y: box.y + 14, "font-size": 11 }, box.label));
    svg.appendChild(group);
  }
  for (const node of diagram.nodes || []) {
    const group = svgNode("g", { class: "ppl-node", "data-site": node.site });
    group.appendChild(svgNode("circle", { cx: node.x, cy: node.y, r: NODE_R, fill: kind[node.site] === "observed" ? "#bbb" : "white", stroke: "black" }));
    group.appendChild(svgNode("text", { x: node.x, y: node.y + NODE_R + 13, "text-anchor": "middle", "font-size": 11 }, node.site));
    svg.appendChild(group);
  }
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
    root.appendChild(plateDiagram(model.get("sites"), model.get("diagram")));
  }

  draw();
  model.on("change:sites", draw);
  model.on("change:diagram", draw);
  model.on("change:title", draw);
}

export default { render };
