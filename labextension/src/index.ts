// pplkernel's JupyterLab extension: renderers for the trace inspector's and the model graph's
// MIME types (see trace.ts and graph.ts; the Python side writes the data).

import { IRenderMime } from '@jupyterlab/rendermime-interfaces';

import { GRAPH_MIME, TRACE_MIME } from './data';
import { GraphRenderer } from './graph';
import { TraceRenderer } from './trace';

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
      createRenderer: options => new TraceRenderer(options)
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
      createRenderer: options => new GraphRenderer(options)
    },
    rank: RANK,
    dataType: 'json'
  }
];

export default extensions;
