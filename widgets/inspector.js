// The trace inspector: a table of sites and a line per plate. Text goes in through textContent,
// never innerHTML, so site names and reprs cannot inject markup.
const COLUMNS = ["site", "kind", "distribution", "batch", "event", "value", "log_prob", "plates"];

function cell(tag, text) {
  const node = document.createElement(tag);
  node.textContent = text;
  return node;
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
    const head = document.createElement("tr");
    for (const name of [...COLUMNS, "log_prob sum"]) head.appendChild(cell("th", name));
    table.appendChild(head);
    for (const site of model.get("sites")) {
      const row = document.createElement("tr");
      row.dataset.site = site.site;
      row.dataset.kind = site.kind;
      for (const name of COLUMNS) row.appendChild(cell("td", String(site[name] ?? "")));
      const total = site.log_prob_sum;
      row.appendChild(cell("td", total === null || total === undefined ? "" : total.toPrecision(4)));
      table.appendChild(row);
    }
    root.appendChild(table);
    for (const plate of model.get("plates")) {
      const line = cell("div", `plate ${plate.name} (size ${plate.size}, dim ${plate.dim}): ${plate.sites.join(", ")}`);
      line.className = "ppl-plate";
      line.dataset.plate = plate.name;
      root.appendChild(line);
    }
  }

  draw();
  model.on("change:sites", draw);
  model.on("change:plates", draw);
  model.on("change:title", draw);
}

export default { render };
