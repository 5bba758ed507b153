"""Pyro's import path ``pyro.poutine.indep_messenger``: :class:`CondIndepStackFrame`, the record of
one plate in a site's ``cond_indep_stack`` (the class lives in :mod:`engine.runtime`).

>>> import engine as pyro, engine.distributions as dist
>>> from engine import poutine
>>> from engine.poutine.indep_messenger import CondIndepStackFrame
>>> def model():
...     with pyro.plate("data", 3):
...         pyro.sample("x", dist.Normal(0.0, 1.0))
>>> (frame,) = poutine.trace(model).get_trace().nodes["x"]["cond_indep_stack"]
>>> isinstance(frame, CondIndepStackFrame), frame.name, frame.size, frame.dim
(True, 'data', 3, -1)
"""

from engine.runtime import CondIndepStackFrame

__all__ = ["CondIndepStackFrame"]
