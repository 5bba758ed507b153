// pplkernel's JupyterLab extension: renderers for the trace inspector's and the model graph's
// MIME types (see trace.ts and graph.ts; the Python side writes the data).

import { IRenderMime } from '@jupyterlab/rendermime-interfaces';
import { Widget } from '@lumino/widgets';

import { GRAPH_MIME, TRACE_MIME } from './data';
import { renderGraph } from './graph';
import { renderTrace } from './trace';

// One renderer for both MIME types: it draws the data of its type with the given function.
class DataRenderer extends Widget implements IRenderMime.IRenderer {
  constructor(
    options: IRenderMime.IRendererOptions,
    private readonly draw: (data: unknown) => HTMLElement
  ) {
    super();
    this.mimeType = options.mimeType;
    this.addClass('ppl-lab-output');
  }

  renderModel(model: IRenderMime.IMimeModel): Promise<void> {
    this.node.replaceChildren(this.draw(model.data[this.mimeType]));
    return Promise.resolve();
  }

  private readonly mimeType: string;
}

// Lower ranks win. The inspector's bundle also holds the widget view, which
// @jupyter-widgets/jupyterlab-manager registers at rank -10; this renderer shows the same rows
// and more, needs no live kernel (a reopened notebook still shows it), and is safe for untrusted
// outputs (all data goes in as text), so it goes first.
const RANK = -20;

const extensions: IRenderMime.IExtension[] = [
  {
    id: '@pplkernel/labextension:trace',
    description: 'Renders the pplkernel trace inspector: a sortable, plate-grouped site table.',
    rendererFactory: {
      safe: true,
      mimeTypes: [TRACE_MIME],
      createRenderer: options => new DataRenderer(options, renderTrace)
    },
    rank: RANK,
    dataType: 'json'
  },
  {
    id: '@pplkernel/labextension:graph',
    description: 'Renders the pplkernel model graph: plates, sites and dependencies as SVG.',
    rendererFactory: {
      safe: true,
      mimeTypes: [GRAPH_MIME],
      createRenderer: options => new DataRenderer(options, renderGraph)
    },
    rank: RANK,
    dataType: 'json'
  }
];

export default extensions;
