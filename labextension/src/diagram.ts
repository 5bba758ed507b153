// Draws a plate diagram as SVG from the positions widgets/diagram.py computed: plate boxes in
// their colours, dependency edges with arrow heads, sites as circles (observed ones shaded,
// deterministic ones dashed) with their name and distribution underneath. The classes and data
// attributes (g.ppl-plate[data-plate], g.ppl-edge[data-source][data-target],
// g.ppl-node[data-site]) are the ones the widget view and the HTML fallback use too.

import { IDiagram, IPlate } from './data';

const SVG = 'http://www.w3.org/2000/svg';
export const NODE_R = 16; // widgets/diagram.py's NODE_R

export interface ISiteInfo {
  kind: string;
  observed: boolean;
  caption: string;
  tooltip: string;
}

function svg<K extends keyof SVGElementTagNameMap>(
  tag: K,
  attributes: { [name: string]: string | number },
  content?: string
): SVGElementTagNameMap[K] {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) {
    node.setAttribute(name, String(value));
  }
  if (content !== undefined) {
    node.textContent = content;
  }
  return node;
}

export function drawDiagram(
  diagram: IDiagram,
  plates: IPlate[],
  sites: Map<string, ISiteInfo>,
  className: string,
  label: string
): SVGSVGElement {
  const colours = new Map(plates.map(plate => [plate.name, plate.colour]));
  const root = svg('svg', {
    class: className,
    width: diagram.width,
    height: diagram.height,
    viewBox: `0 0 ${diagram.width} ${diagram.height}`,
    role: 'img'
  });
  root.setAttribute('aria-label', label);
  for (const box of diagram.plates) {
    const colour = colours.get(box.plate) ?? '#777777';
    const group = svg('g', { class: 'ppl-plate' });
    group.dataset.plate = box.plate;
    group.appendChild(
      svg('rect', {
        x: box.x,
        y: box.y,
        width: box.width,
        height: box.height,
        rx: 6,
        fill: colour,
        'fill-opacity': 0.06,
        stroke: colour,
        'stroke-width': 1.5
      })
    );
    group.appendChild(
      svg('text', { x: box.x + 6, y: box.y + 14, fill: colour, class: 'ppl-plate-label' }, box.label)
    );
    root.appendChild(group);
  }
  for (const edge of diagram.edges) {
    const group = svg('g', { class: 'ppl-edge' });
    group.dataset.source = edge.source;
    group.dataset.target = edge.target;
    group.appendChild(svg('path', { d: edge.path, fill: 'none' }));
    group.appendChild(svg('polygon', { points: edge.head }));
    root.appendChild(group);
  }
  for (const node of diagram.nodes) {
    const info = sites.get(node.site);
    const group = svg('g', { class: 'ppl-node' });
    group.dataset.site = node.site;
    group.dataset.kind = info?.kind ?? '';
    group.dataset.observed = String(info?.observed ?? false);
    group.appendChild(svg('title', {}, info?.tooltip ?? node.site));
    group.appendChild(
      svg('circle', {
        cx: node.x,
        cy: node.y,
        r: NODE_R,
        class: info?.observed ? 'ppl-observed' : info?.kind === 'determ.' ? 'ppl-determ' : 'ppl-latent'
      })
    );
    group.appendChild(
      svg('text', { x: node.x, y: node.y + NODE_R + 13, 'text-anchor': 'middle' }, node.site)
    );
    if (info?.caption) {
      group.appendChild(
        svg(
          'text',
          { x: node.x, y: node.y + NODE_R + 26, 'text-anchor': 'middle', class: 'ppl-caption' },
          info.caption
        )
      );
    }
    root.appendChild(group);
  }
  return root;
}
