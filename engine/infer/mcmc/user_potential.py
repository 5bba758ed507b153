"""A potential energy given by the user instead of a model (``HMC(potential_fn=...)``).

``potential_fn({name: value})`` returns the potential energy of one point in unconstrained
space; the sites and their shapes come from ``initial_params``, as in Pyro: with several chains
each value has a leading dim of ``num_chains``. The function sees one point at a time, so the
chains are evaluated one after another.

>>> import torch
>>> quadratic = UserPotential(lambda p: 0.5 * (p["x"] ** 2).sum(), {"x": torch.zeros(2)}, 1)
>>> quadratic.energy(torch.ones(3, 2))
tensor([1., 1., 1.])
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from engine.errors import MCMCError, fmt_shape
from engine.infer.mcmc.flat_layout import FlatLayout, SiteSlot


class UserPotential(FlatLayout):
    """``potential_fn`` over the sites of ``initial_params`` (see the module docstring)."""

    def __init__(
        self,
        potential_fn: Callable[[dict[str, torch.Tensor]], torch.Tensor],
        initial_params: dict[str, Any],
        num_chains: int,
        transforms: dict[str, Any] | None = None,
    ):
        self.potential_fn = potential_fn
        # Pyro's ``transforms``: site name to the map from its support to unconstrained space;
        # the draws of those sites are mapped back by its inverse.
        self._transforms = dict(transforms or {})
        self.batching = "none"  # potential_fn sees one point at a time
        self.batched = False
        slots, offset = [], 0
        # Without initial values (nothing to sample) the point is empty, of the default dtype.
        self.dtype, self.device = torch.get_default_dtype(), torch.device("cpu")
        for name, value in initial_params.items():
            value = torch.as_tensor(value)
            if num_chains > 1 and (value.dim() == 0 or value.shape[0] != num_chains):
                raise MCMCError(
                    f"initial_params['{name}'] has shape {fmt_shape(value.shape)}: with "
                    f"potential_fn and {num_chains} chains every value needs a leading dim of "
                    f"{num_chains} (one starting point per chain), which also tells the site's "
                    "shape."
                )
            shape = value.shape[1:] if num_chains > 1 else value.shape
            slots.append(SiteSlot(name, shape, offset, math.prod(shape)))
            offset += math.prod(shape)
            self.dtype, self.device = value.dtype, value.device
        super().__init__(slots)

    def energy(self, z: torch.Tensor) -> torch.Tensor:
        """``potential_fn`` at each row of ``z`` (B, D): a tensor of shape (B,).

        One point's energy may come back with size-1 dims (``energy[None]``, as Pyro allows);
        any other shape is refused, since the sampler would broadcast it against the chains.

        >>> UserPotential(lambda p: p["x"].sum()[None], {"x": torch.zeros(2)}, 1).energy(
        ...     torch.ones(2, 2)
        ... )
        tensor([2., 2.])
        """
        return torch.stack([self._one_energy(row) for row in z])

    def _one_energy(self, row: torch.Tensor) -> torch.Tensor:
        energy = torch.as_tensor(self.potential_fn(self.unconstrained_sites(row)))
        if energy.numel() != 1:
            raise MCMCError(
                f"potential_fn returned a tensor of shape {fmt_shape(energy.shape)}; it must "
                "return one number, the potential energy of the point it is given (sum the "
                "terms: `.sum()`)."
            )
        return energy.reshape(())

    def site_values(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """The sites at each row of ``z`` (B, D): ``{name: (B, *shape)}``, each mapped back by
        ``transforms[name].inv`` when it has a transform.

        >>> exp = torch.distributions.transforms.ExpTransform()
        >>> start = {"s": torch.tensor(0.0)}
        >>> scale = UserPotential(lambda p: p["s"] ** 2, start, 1, {"s": exp.inv})
        >>> scale.site_values(torch.zeros(1, 1))["s"].tolist()  # s = exp(0)
        [1.0]
        """
        sites = self.unconstrained_sites(z)
        return {
            name: self._transforms[name].inv(value) if name in self._transforms else value
            for name, value in sites.items()
        }

    def transforms(self) -> dict[str, Any]:
        """The ``transforms`` given (site name to the map onto unconstrained space)."""
        return dict(self._transforms)
