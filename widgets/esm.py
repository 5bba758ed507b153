"""The monitors' front-end code: the shared base (widgets/monitor_base.js) put in front of each
monitor's own part, as one ES module.

How the pieces meet, and why so: anywidget's front end (the same one in JupyterLab 4, Notebook 7,
VS Code and Colab) takes a widget's ``_esm`` as module source text, or as a URL when the text
looks like one, and imports the text through a ``blob:`` URL. A ``blob:`` module has no base to
resolve ``import ... from "./monitor_base.js"`` against, and no frontend serves this package's
files at a URL that all four share (VS Code and Colab have no route to site-packages). A bundler
would join the files, but the ESM ships as package data with no build step. So Python joins them
when the class is defined: the base declares its functions and exports nothing, the monitor's
part uses them and makes the one ``export default``. The cost is that anywidget's hot reload,
which watches an ``_esm`` given as a path, does not apply to the monitors.

Both monitors' default export is anywidget's widget factory (``monitorWidget`` in the base):
anywidget calls it once per widget, and its closure holds that widget's state, shared by all of
the widget's views and by no other widget.

>>> source = monitor_esm("svi_monitor.js")
>>> source.index("function monitorWidget") < source.index("export default monitorWidget(")
True
>>> source.count("export default")
1
"""

from __future__ import annotations

import pathlib

BASE = "monitor_base.js"


def monitor_esm(filename: str) -> str:
    """The ES module source of the monitor whose own part is this package's ``filename``: the
    shared base, then that part (see the module docstring)."""
    here = pathlib.Path(__file__).parent
    return "\n".join((here / name).read_text(encoding="utf-8") for name in (BASE, filename))
