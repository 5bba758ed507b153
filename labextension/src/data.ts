// The shapes of the two MIME payloads (written by widgets/inspector.py and widgets/graph.py), and
// readers that turn whatever arrives into them. Outputs can come from any notebook, so nothing
// is trusted: strings become text, numbers must be finite, colours must be #rrggbb.

export const TRACE_MIME = 'application/vnd.pplkernel.trace+json';
export const GRAPH_MIME = 'application/vnd.pplkernel.graph+json';

export interface IPlate {
  name: string;
  size: string;
  dim: string;
  sites: string[];
  colour: string;
}

export interface IDiagramNode {
  site: string;
  x: number;
  y: number;
}

export interface IDiagramBox {
  plate: string;
  label: string;
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface IDiagramEdge {
  source: string;
  target: string;
  path: string;
  head: string;
}

// Positions computed by widgets/diagram.py (the HTML fallback draws the same ones).
export interface IDiagram {
  width: number;
  height: number;
  nodes: IDiagramNode[];
  plates: IDiagramBox[];
  edges: IDiagramEdge[];
}

type Json = { [key: string]: unknown };

const FALLBACK_COLOUR = '#777777';

export function text(value: unknown): string {
  return value === null || value === undefined ? '' : String(value);
}

export function num(value: unknown): number {
  const n = Number(value);
  return Number.isFinite(n) ? n : 0;
}

export function list(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

export function record(value: unknown): Json {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
    ? (value as Json)
    : {};
}

function colour(value: unknown): string {
  const candidate = text(value);
  return /^#[0-9a-fA-F]{6}$/.test(candidate) ? candidate : FALLBACK_COLOUR;
}

// SVG path data and polygon points: only numbers, spaces, commas and the letters M and Q (the
// only commands widgets/diagram.py writes).
function geometry(value: unknown): string {
  const candidate = text(value);
  return /^[-0-9., MQ]*$/.test(candidate) ? candidate : '';
}

export function readPlates(value: unknown): IPlate[] {
  return list(value).map(item => {
    const plate = record(item);
    return {
      name: text(plate.name),
      size: text(plate.size),
      dim: text(plate.dim),
      sites: list(plate.sites).map(text),
      colour: colour(plate.colour)
    };
  });
}

export function readDiagram(value: unknown): IDiagram {
  const diagram = record(value);
  return {
    width: num(diagram.width),
    height: num(diagram.height),
    nodes: list(diagram.nodes).map(item => {
      const node = record(item);
      return { site: text(node.site), x: num(node.x), y: num(node.y) };
    }),
    plates: list(diagram.plates).map(item => {
      const box = record(item);
      return {
        plate: text(box.plate),
        label: text(box.label),
        x: num(box.x),
        y: num(box.y),
        width: num(box.width),
        height: num(box.height)
      };
    }),
    edges: list(diagram.edges).map(item => {
      const edge = record(item);
      return {
        source: text(edge.source),
        target: text(edge.target),
        path: geometry(edge.path),
        head: geometry(edge.head)
      };
    })
  };
}

// A translucent version of a #rrggbb colour, to tint table rows.
export function tint(hex: string, alpha: number): string {
  const value = parseInt(hex.slice(1), 16);
  return `rgba(${(value >> 16) & 255}, ${(value >> 8) & 255}, ${value & 255}, ${alpha})`;
}

export function plateLabel(plate: IPlate): string {
  return `${plate.name} (${plate.size}, dim ${plate.dim})`;
}

// An element with some text, set as text (never parsed as markup).
export function element<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className: string,
  content?: string
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (className) {
    node.className = className;
  }
  if (content !== undefined) {
    node.textContent = content;
  }
  return node;
}
