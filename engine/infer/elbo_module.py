"""``ELBOModule``: an ELBO bound to a model and a guide, as a ``torch.nn.Module``.

Pyro lets an ELBO instance be called, ``Trace_ELBO()(model, guide)``, to get a module whose
``forward(*args)`` is the differentiable loss: a plain torch training loop (or a Lightning module)
then fits the model with any torch optimizer over ``elbo_module.parameters()``.

>>> import torch, engine, engine.distributions as dist
>>> from engine.infer import Trace_ELBO
>>> from engine.infer.autoguide import AutoNormal
>>> engine.clear_param_store()
>>> def model(x):
...     loc = engine.sample("loc", dist.Normal(0.0, 10.0))
...     with engine.plate("data", len(x)):
...         engine.sample("x", dist.Normal(loc, 1.0), obs=x)
>>> data = torch.full((20,), 3.0)
>>> loss_fn = Trace_ELBO()(model, AutoNormal(model))
>>> _ = loss_fn(data)  # the first call creates the guide's parameters
>>> optimizer = torch.optim.Adam(loss_fn.parameters(), lr=0.1)
>>> for _ in range(300):
...     optimizer.zero_grad()
...     loss_fn(data).backward()
...     optimizer.step()
>>> abs(loss_fn.guide.median()["loc"].item() - 3.0) < 0.2
True
>>> engine.clear_param_store()
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from engine.infer.elbo import ELBO


class ELBOModule(torch.nn.Module):
    """``elbo`` bound to ``model`` and ``guide``: calling it returns the differentiable loss.

    ``model`` and ``guide`` are kept as submodules when they are modules (a ``PyroModule``, an
    autoguide), and ``parameters()`` yields theirs, as each of them names them (an autoguide
    keeps its tensors in the param store). As in Pyro, the params a plain function creates with
    ``param`` are not among them: read those from the param store.
    """

    def __init__(self, model: Callable, guide: Callable, elbo: ELBO):
        super().__init__()
        self.model = model
        self.guide = guide
        self.elbo = elbo

    def named_parameters(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[tuple[str, torch.Tensor]]:
        # Each part names its own tensors (torch's default would skip an autoguide's override).
        seen: set[int] = set()
        for part_name in ("model", "guide"):
            part = getattr(self, part_name)
            if not isinstance(part, torch.nn.Module):
                continue
            for name, tensor in part.named_parameters(f"{prefix}{part_name}.", recurse):
                if not (remove_duplicate and id(tensor) in seen):
                    seen.add(id(tensor))
                    yield name, tensor

    def forward(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        return self.elbo.differentiable_loss(self.model, self.guide, *args, **kwargs)
