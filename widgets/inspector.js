// The trace inspector: a table of sites and a line per plate. Text goes in through textContent,
// never innerHTML, so site names and reprs cannot inject markup.
const COLUMNS = ["site", "kind", "distribution", "batch", "event", "value", "log_prob", "plates", "enum"];

function cell(tag, text) {
  const node = document.createElement(tag);
  node.textContent = text;
  return node;
}

// The plate diagram comes drawn from Python (widgets/diagram.py diagram_svg, every name escaped
// there): the same picture as the HTML fallback. It is parsed as XML, so its text stays text.
function parsedSvg(markup) {
  if (!markup) return document.createTextNode("");
  const parsed = new DOMParser().parseFromString(markup, "image/svg+xml");
  return document.importNode(parsed.documentElement, true);
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
    root.appendChild(parsedSvg(model.get("diagram_svg")));
  }

  draw();
  model.on("change:sites", draw);
  model.on("change:diagram_svg", draw);
  model.on("change:title", draw);
}

export default { render };
