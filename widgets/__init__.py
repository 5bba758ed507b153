"""Live views of engine objects for Jupyter (anywidget): the trace inspector, the SVI monitor and
the MCMC monitor. Each is one Python class with one small ESM file (the two monitors' files
share a base, widgets/monitor_base.js: see widgets.esm), keeps what a saved notebook must show in
traits, and has a static HTML fallback for frontends without widgets. The model
graph is a plain displayable object (it never changes), drawn by the JupyterLab extension or as
HTML. :func:`plot_posterior` draws a guide's marginals over the prior as a static figure.
"""

from widgets.graph import ModelGraph
from widgets.inspector import TraceInspector
from widgets.mcmc_monitor import McmcMonitor
from widgets.posterior_plot import plot_posterior
from widgets.svi_monitor import SviMonitor

__all__ = ["McmcMonitor", "ModelGraph", "SviMonitor", "TraceInspector", "plot_posterior"]
