"""Collection rules for the whole repository (pytest runs the doctests of engine/, widgets/ and
pplkernel/ too): a module that imports an optional package at its top is collected only where
that package is installed. The tests of the feature itself cover both cases.
"""

import importlib.util

# engine.infer.render_graphviz subclasses graphviz.Digraph; engine.render_model imports it only
# when the ``graphviz`` package is there (the ``test`` extra installs it).
collect_ignore = []
if importlib.util.find_spec("graphviz") is None:
    collect_ignore.append("engine/infer/render_graphviz.py")
