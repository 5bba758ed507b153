// The trace inspector (application/vnd.pplkernel.trace+json): one row per site, grouped by the
// plates the site sits in (each group collapses), sortable by any column (click its header),
// each row tinted with its plates' colours; a plate legend and the plate diagram below.
//
// It keeps the widget view's classes and data attributes (.ppl-inspector, tr[data-site],
// tr[data-kind], svg.ppl-plate-diagram), so a page reads the same way whichever view rendered
// the inspector; .ppl-lab-trace marks this renderer.

import {
  IPlate,
  element,
  list,
  plateLabel,
  readDiagram,
  readPlates,
  record,
  text,
  tint
} from './data';
import { ISiteInfo, drawDiagram } from './diagram';

const COLUMNS = ['site', 'kind', 'distribution', 'batch', 'event', 'value', 'log_prob', 'plates', 'enum'];
const SUM = 'log_prob sum';

interface ISiteRow {
  cells: Map<string, string>;
  sum: number | null; // log_prob sum as a number for sorting (null when not computed)
  order: number; // the model's order
  plates: IPlate[];
}

function readSum(value: unknown): { shown: string; key: number | null } {
  if (typeof value === 'number') {
    return { shown: value.toPrecision(4), key: value };
  }
  // "-inf", "inf" and "nan" arrive as text (JSON has no such numbers); null when not computed.
  const shown = text(value);
  if (shown === '-inf' || shown === 'inf') {
    return { shown, key: shown === 'inf' ? Infinity : -Infinity };
  }
  return { shown, key: null };
}

function compare(a: ISiteRow, b: ISiteRow, column: string): number {
  if (column === SUM) {
    // Rows without a number go last whichever way the column is sorted.
    if (a.sum === null || b.sum === null) {
      return a.sum === b.sum ? 0 : a.sum === null ? 1 : -1;
    }
    return a.sum === b.sum ? 0 : a.sum < b.sum ? -1 : 1;
  }
  return (a.cells.get(column) ?? '').localeCompare(b.cells.get(column) ?? '', undefined, {
    numeric: true
  });
}

class TraceView {
  readonly node = element('div', 'ppl-inspector ppl-lab-trace');
  private readonly groups: { body: HTMLTableSectionElement; rows: ISiteRow[] }[] = [];
  private readonly rowNodes = new Map<ISiteRow, HTMLTableRowElement>();
  private readonly table = element('table', 'ppl-table');
  private sortColumn = '';
  private descending = false;
  // The enum column only when something is enumerated (as in the Python text table).
  private columns = COLUMNS;

  constructor(data: unknown) {
    const payload = record(data);
    const plates = readPlates(payload.plates);
    const rows = list(payload.sites).map((item, order) => this.readRow(item, order, plates));
    this.columns = COLUMNS.filter(column => column !== 'enum' || rows.some(row => row.cells.get('enum')));
    this.node.dataset.renderer = 'pplkernel-labextension';
    this.node.dataset.sites = String(rows.length);
    this.node.dataset.plates = String(plates.length);
    this.node.appendChild(element('div', 'ppl-title', text(payload.title) || 'Trace'));
    this.table.dataset.rows = String(rows.length);
    this.table.appendChild(this.header());
    this.addGroups(rows);
    this.node.appendChild(this.table);
    if (plates.length > 0) {
      this.node.appendChild(this.legend(plates));
    }
    const sites = new Map<string, ISiteInfo>();
    for (const row of rows) {
      const name = row.cells.get('site') ?? '';
      const kind = row.cells.get('kind') ?? '';
      const caption = row.cells.get('distribution') ?? '';
      sites.set(name, { kind, observed: kind === 'observed', caption, tooltip: `${name} ~ ${caption}` });
    }
    const diagram = readDiagram(payload.diagram);
    if (diagram.nodes.length > 0) {
      this.node.appendChild(
        drawDiagram(diagram, plates, sites, 'ppl-plate-diagram', `plate diagram of ${text(payload.title)}`)
      );
    }
  }

  private readRow(item: unknown, order: number, plates: IPlate[]): ISiteRow {
    const site = record(item);
    const cells = new Map(COLUMNS.map(column => [column, text(site[column])]));
    const sum = readSum(site.log_prob_sum);
    cells.set(SUM, sum.shown);
    const name = cells.get('site') ?? '';
    return { cells, sum: sum.key, order, plates: plates.filter(plate => plate.sites.includes(name)) };
  }

  private header(): HTMLTableSectionElement {
    const head = element('thead', '');
    const row = element('tr', '');
    for (const column of [...this.columns, SUM]) {
      const cell = element('th', 'ppl-sortable', column);
      cell.dataset.column = column;
      cell.tabIndex = 0;
      cell.title = `Sort by ${column}`;
      // A click sorts without focusing the header (focus would scroll a wide output sideways);
      // the keyboard reaches it with Tab.
      cell.addEventListener('mousedown', event => event.preventDefault());
      cell.addEventListener('click', () => this.sortBy(column));
      cell.addEventListener('keydown', event => {
        if (event.key === 'Enter' || event.key === ' ') {
          event.preventDefault();
          this.sortBy(column);
        }
      });
      row.appendChild(cell);
    }
    head.appendChild(row);
    return head;
  }

  // One tbody per combination of plates, in order of first use; sites in no plate first.
  private addGroups(rows: ISiteRow[]): void {
    const byKey = new Map<string, ISiteRow[]>();
    for (const row of rows) {
      const key = JSON.stringify(row.plates.map(plate => plate.name));
      byKey.set(key, [...(byKey.get(key) ?? []), row]);
    }
    const keys = [...byKey.keys()].sort((a, b) => Number(a !== '[]') - Number(b !== '[]'));
    const onlyUnplated = keys.length === 1 && keys[0] === '[]';
    for (const key of keys) {
      const members = byKey.get(key) ?? [];
      const body = element('tbody', 'ppl-group');
      body.dataset.group = members[0].plates.map(plate => plate.name).join(', ');
      body.dataset.collapsed = 'false';
      if (!onlyUnplated) {
        body.appendChild(this.groupHeader(body, members));
      }
      for (const row of members) {
        const node = this.siteRow(row);
        this.rowNodes.set(row, node);
        body.appendChild(node);
      }
      this.groups.push({ body, rows: members });
      this.table.appendChild(body);
    }
  }

  private groupHeader(body: HTMLTableSectionElement, members: ISiteRow[]): HTMLTableRowElement {
    const header = element('tr', 'ppl-group-header');
    const cell = element('td', '');
    cell.colSpan = this.columns.length + 1;
    const toggle = element('button', 'ppl-toggle');
    toggle.type = 'button';
    toggle.setAttribute('aria-expanded', 'true');
    const arrow = element('span', 'ppl-arrow', '\u25be');
    toggle.appendChild(arrow);
    const plates = members[0].plates;
    if (plates.length === 0) {
      toggle.appendChild(element('span', 'ppl-no-plate', 'no plate'));
    }
    for (const plate of plates) {
      const chip = element('span', 'ppl-chip', plateLabel(plate));
      chip.style.borderColor = plate.colour;
      chip.style.background = tint(plate.colour, 0.18);
      toggle.appendChild(chip);
    }
    const count = members.length === 1 ? '1 site' : `${members.length} sites`;
    toggle.appendChild(element('span', 'ppl-count', count));
    toggle.addEventListener('click', () => {
      const collapse = body.dataset.collapsed !== 'true';
      body.dataset.collapsed = String(collapse);
      toggle.setAttribute('aria-expanded', String(!collapse));
      arrow.textContent = collapse ? '\u25b8' : '\u25be';
      for (const row of members) {
        const node = this.rowNodes.get(row);
        if (node) {
          node.hidden = collapse;
        }
      }
    });
    cell.appendChild(toggle);
    header.appendChild(cell);
    return header;
  }

  private siteRow(row: ISiteRow): HTMLTableRowElement {
    const node = element('tr', 'ppl-site');
    node.dataset.site = row.cells.get('site') ?? '';
    node.dataset.kind = row.cells.get('kind') ?? '';
    node.dataset.plates = row.plates.map(plate => plate.name).join(', ');
    // Tinted with its plates' colours: one plate a flat tint, overlapping plates a blend.
    const tints = row.plates.map(plate => tint(plate.colour, 0.14));
    if (tints.length === 1) {
      node.style.background = tints[0];
    } else if (tints.length > 1) {
      node.style.background = `linear-gradient(90deg, ${tints.join(', ')})`;
    }
    for (const column of [...this.columns, SUM]) {
      const cell = element('td', '');
      if (column === 'plates' && row.plates.length > 0) {
        for (const plate of row.plates) {
          const chip = element('span', 'ppl-chip', plate.name);
          chip.style.borderColor = plate.colour;
          cell.appendChild(chip);
        }
        // The dims, as the text table shows them (e.g. "data@-1").
        cell.title = row.cells.get('plates') ?? '';
      } else {
        cell.textContent = row.cells.get(column) ?? '';
      }
      if (column === SUM || column === 'log_prob') {
        cell.classList.add('ppl-number');
      }
      node.appendChild(cell);
    }
    return node;
  }

  private legend(plates: IPlate[]): HTMLUListElement {
    const legend = element('ul', 'ppl-plate-legend');
    for (const plate of plates) {
      const item = element('li', '');
      item.dataset.plate = plate.name;
      const swatch = element('span', 'ppl-swatch');
      swatch.style.background = plate.colour;
      item.appendChild(swatch);
      const count = plate.sites.length === 1 ? '1 site' : `${plate.sites.length} sites`;
      item.appendChild(document.createTextNode(`${plateLabel(plate)}: ${count}`));
      legend.appendChild(item);
    }
    return legend;
  }

  // Sorts the rows of every group by a column (ties keep the model's order); clicking the same
  // header again reverses the order.
  private sortBy(column: string): void {
    this.descending = this.sortColumn === column ? !this.descending : false;
    this.sortColumn = column;
    this.table.dataset.sortColumn = column;
    this.table.dataset.sortOrder = this.descending ? 'descending' : 'ascending';
    for (const cell of Array.from(this.table.querySelectorAll('th'))) {
      const sorted = cell.dataset.column === column;
      cell.setAttribute('aria-sort', sorted ? this.table.dataset.sortOrder : 'none');
    }
    const sign = this.descending ? -1 : 1;
    for (const group of this.groups) {
      const ordered = [...group.rows].sort((a, b) => {
        const byColumn = compare(a, b, column);
        const missing = column === SUM && (a.sum === null || b.sum === null);
        return (missing ? byColumn : sign * byColumn) || a.order - b.order;
      });
      for (const row of ordered) {
        const node = this.rowNodes.get(row);
        if (node) {
          group.body.appendChild(node);
        }
      }
    }
  }
}

export function renderTrace(data: unknown): HTMLDivElement {
  return new TraceView(data).node;
}
