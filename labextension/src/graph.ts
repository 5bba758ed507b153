// The model graph (application/vnd.pplkernel.graph+json): plates as boxes, sample sites as nodes
// (observed ones shaded), dependencies as arrows, drawn as SVG at the positions the Python side
// laid out (overlapping plates included). Pointing at a site highlights its edges and the sites
// at their other ends.

import { element, list, readDiagram, readPlates, record, text } from './data';
import { ISiteInfo, drawDiagram } from './diagram';

function siteInfo(item: unknown): [string, ISiteInfo] {
  const node = record(item);
  const name = text(node.name);
  const caption = text(node.distribution);
  const plates = list(node.plates).map(text);
  const observed = node.observed === true;
  const where = plates.length > 0 ? ` in ${plates.join(', ')}` : '';
  return [
    name,
    {
      kind: text(node.kind),
      observed,
      caption,
      tooltip: `${name} ~ ${caption}${observed ? ' (observed)' : ''}${where}`
    }
  ];
}

function highlight(root: SVGSVGElement, site: string | null): void {
  for (const edge of Array.from(root.querySelectorAll<SVGGElement>('g.ppl-edge'))) {
    const on = site !== null && (edge.dataset.source === site || edge.dataset.target === site);
    edge.classList.toggle('ppl-highlight', on);
  }
}

export function renderGraph(data: unknown): HTMLDivElement {
  const payload = record(data);
  const title = text(payload.title) || 'Model graph';
  const plates = readPlates(payload.plates);
  const sites = new Map(list(payload.nodes).map(siteInfo));
  const edges = list(payload.edges);
  const root = element('div', 'ppl-model-graph ppl-lab-graph');
  root.dataset.renderer = 'pplkernel-labextension';
  root.dataset.nodes = String(sites.size);
  root.dataset.edges = String(edges.length);
  root.dataset.plates = String(plates.length);
  root.appendChild(element('div', 'ppl-title', title));
  const svg = drawDiagram(readDiagram(payload.layout), plates, sites, 'ppl-graph', title);
  for (const node of Array.from(svg.querySelectorAll<SVGGElement>('g.ppl-node'))) {
    node.addEventListener('mouseenter', () => highlight(svg, node.dataset.site ?? null));
    node.addEventListener('mouseleave', () => highlight(svg, null));
  }
  root.appendChild(svg);
  return root;
}
