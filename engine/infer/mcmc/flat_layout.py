"""Latent sites packed into one flat unconstrained vector per chain, and what every potential
built on that layout shares: unpacking, packing starting values, and the gradient.

>>> import torch
>>> layout = FlatLayout([SiteSlot("a", torch.Size([2]), 0, 2), SiteSlot("b", torch.Size([]), 2, 1)])
>>> layout.unconstrained_sites(torch.arange(6.0).reshape(2, 3))["a"]
tensor([[0., 1.],
        [3., 4.]])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from engine.distributions.validation import trusted_run
from engine.errors import MCMCError, did_you_mean, fmt_shape


@dataclass(frozen=True)
class SiteSlot:
    """Where one latent site's unconstrained value lives in the flat vector."""

    name: str
    unconstrained_shape: torch.Size
    offset: int
    size: int


class FlatLayout:
    """Sites in ``slots`` packed one after another into vectors of length ``num_latent``.

    Subclasses define ``energy(z)`` (B,) for z (B, D), and ``_describe_nonfinite_start`` to say
    which site makes a starting point unusable.
    """

    def __init__(self, slots: list[SiteSlot]):
        self.slots = slots
        self.num_latent = sum(slot.size for slot in slots)

    def unconstrained_sites(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """Split ``z`` (..., D) into ``{name: (..., *unconstrained_shape)}``."""
        batch = z.shape[:-1]
        return {
            slot.name: z[..., slot.offset : slot.offset + slot.size].reshape(
                batch + slot.unconstrained_shape
            )
            for slot in self.slots
        }

    def energy(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def energy_and_grad(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``U(z)`` (B,) and its gradient (B, D); rows are independent chains."""
        with torch.enable_grad():
            z = z.detach().requires_grad_(True)
            energy = self.energy(z)
            if not energy.requires_grad:  # nothing to sample: U does not depend on z
                return energy.detach(), torch.zeros_like(z)
            (grad,) = torch.autograd.grad(energy.sum(), z)
        return energy.detach(), grad

    def points_from_values(self, values: dict[str, Any], num_chains: int) -> torch.Tensor:
        """Starting points (C, D) from unconstrained ``values`` (Pyro's ``initial_params``):
        each of a site's unconstrained shape (every chain starts there) or with a leading dim of
        ``num_chains`` (one value per chain). Each chain's energy and gradient must be finite.
        A key that is not a latent site is refused (Pyro fails on it with a bare KeyError)."""
        names = [slot.name for slot in self.slots]
        missing = [name for name in names if name not in values]
        unknown = [key for key in values if key not in names]
        if unknown:
            hints = "".join(did_you_mean(key, missing or names) for key in unknown)
            raise MCMCError(
                f"initial_params gives {unknown}, which {'is' if len(unknown) == 1 else 'are'} "
                f"not a latent site of the model.{hints} The latent sites are {names}"
                f"{f', and {missing} got no value' if missing else ''}; observed and "
                "deterministic sites take no starting value. Fix: rename or drop the key(s)."
            )
        if missing:
            raise MCMCError(
                f"initial_params has no value for {missing}; give every latent site ({names}) "
                "a value in unconstrained space."
            )
        parts = []
        for slot in self.slots:
            value = torch.as_tensor(values[slot.name], dtype=self.dtype, device=self.device)
            per_chain = (num_chains, *slot.unconstrained_shape)
            if value.shape == slot.unconstrained_shape:
                value = value.expand(per_chain)
            elif value.shape != per_chain:
                raise MCMCError(
                    f"initial_params['{slot.name}'] has shape {fmt_shape(value.shape)}; it must "
                    f"be {fmt_shape(slot.unconstrained_shape)} (the site's unconstrained shape, "
                    f"for every chain) or {fmt_shape(per_chain)} (one value per chain, "
                    f"{num_chains} chains)."
                )
            parts.append(value.reshape(num_chains, slot.size))
        z = self.joined(parts, num_chains)
        with trusted_run():  # a bad start must show as a non-finite density, by site
            energy, grad = self.energy_and_grad(z)
        bad = ~(torch.isfinite(energy) & torch.isfinite(grad).all(-1))
        if bool(bad.any()):
            chain = int(bad.nonzero()[0])
            raise MCMCError(
                f"initial_params gives chain {chain} a non-finite potential energy "
                f"({energy[chain].item()}) or gradient"
                f"{self._describe_nonfinite_start(z[chain : chain + 1])}. Start it inside the "
                "support (the values are in unconstrained space: the log of a scale, the logit "
                "of a probability)."
            )
        return z

    def _describe_nonfinite_start(self, z: torch.Tensor) -> str:
        """Words naming what is non-finite at the single point ``z`` (1, D), or ''."""
        return ""

    def joined(self, parts: list[torch.Tensor], rows: int) -> torch.Tensor:
        """The sites' flattened values ``parts`` (each (rows, size)) side by side, (rows, D);
        with nothing to sample, ``rows`` empty rows."""
        if not parts:
            return torch.zeros(rows, 0, dtype=self.dtype, device=self.device)
        return torch.cat(parts, dim=-1)
