"""Normalizing-flow guides over the flat unconstrained vector: ``AutoNormalizingFlow`` and
``AutoIAFNormal``.

The posterior is a standard Normal over the vector pushed through a learnable transform (for
``AutoIAFNormal``, ``num_transforms`` affine autoregressive layers, each an ``AutoRegressiveNN``).
The transform is a child module of the guide, so ``state_dict`` holds its weights under
``transform.*``; each call registers them in the param store (``engine.module``) under
``<prefix>.transform$$$<weight>``, where SVI's optimizer finds them. As in Pyro the flow starts
near the identity around zero: ``init_loc_fn`` does not place it.

>>> import engine, engine.distributions as dist
>>> engine.clear_param_store()
>>> def model():
...     engine.sample("w", dist.Normal(torch.zeros(2), 1.0).to_event(1))
...     engine.sample("s", dist.LogNormal(0.0, 1.0))
>>> guide = AutoIAFNormal(model, hidden_dim=[8])
>>> sorted(guide()), guide.latent_dim
(['s', 'w'], 3)
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.distributions.transforms import Transform

from engine.distributions import Normal, TransformedDistribution
from engine.distributions.affine_autoregressive import affine_autoregressive
from engine.distributions.torch_transform import ComposeTransformModule
from engine.errors import AutoGuideError
from engine.infer.autoguide.continuous import AutoContinuous
from engine.infer.autoguide.guide import GuideParam
from engine.infer.autoguide.initialization import InitFn, init_to_feasible
from engine.primitives import module

__all__ = ["AutoIAFNormal", "AutoNormalizingFlow"]


class AutoNormalizingFlow(AutoContinuous):
    """A standard Normal over the flat vector, pushed through ``init_transform_fn(latent_dim)``.

    ``init_transform_fn`` is called once, when the guide learns the vector's length, and must
    return a ``Transform`` (learnable ones as ``nn.Module``s, e.g. a ``ComposeTransformModule``).

    >>> import engine, engine.distributions as dist
    >>> from engine.distributions.transforms import affine_autoregressive
    >>> engine.clear_param_store()
    >>> def model():
    ...     engine.sample("x", dist.Normal(torch.zeros(3), 1.0).to_event(1))
    >>> guide = AutoNormalizingFlow(model, affine_autoregressive)
    >>> guide.setup().get_posterior().sample().shape
    torch.Size([3])
    """

    def __init__(
        self,
        model: Callable,
        init_transform_fn: Callable[[int], Transform],
        *,
        create_plates: Callable | None = None,
        model_args: tuple | None = None,
        model_kwargs: dict | None = None,
    ):
        super().__init__(model, init_to_feasible, create_plates=create_plates)
        self._init_transform_fn = init_transform_fn
        self.transform: Transform | None = None
        self._setup_if_given(model_args, model_kwargs)

    def _posterior_params(self, init_loc: torch.Tensor) -> list[GuideParam]:
        transform = self._init_transform_fn(self.latent_dim)
        if not isinstance(transform, Transform):
            raise AutoGuideError(
                f"{type(self).__name__}: init_transform_fn({self.latent_dim}) returned a "
                f"{type(transform).__name__}; it must return a torch Transform over vectors of "
                f"length {self.latent_dim} (e.g. affine_autoregressive({self.latent_dim}))."
            )
        # The weights follow the latent vector's dtype and device (float64 under
        # torch.set_default_dtype, a GPU when the model's tensors are there).
        if isinstance(transform, torch.nn.Module):
            transform = transform.to(dtype=init_loc.dtype, device=init_loc.device)
        self.transform = transform
        self._base_like = init_loc.detach()
        return []  # the transform's weights are module parameters, registered at each call

    def get_base_dist(self) -> torch.distributions.Distribution:
        """A standard Normal over the flat vector."""
        zeros = torch.zeros_like(self._base_like)
        return Normal(zeros, torch.ones_like(zeros), validate_args=False).to_event(1)

    def get_transform(self, *args: Any, **kwargs: Any) -> Transform:
        """The flow, its weights registered in the param store (so a trace sees them)."""
        if isinstance(self.transform, torch.nn.Module):
            module(f"{self._prefix}.transform", self.transform)
        return self.transform

    def get_posterior(self, *args: Any, **kwargs: Any) -> torch.distributions.Distribution:
        """``TransformedDistribution(get_base_dist(), get_transform())``."""
        return TransformedDistribution(self.get_base_dist(), self.get_transform(*args, **kwargs))

    def _loc_scale(self) -> tuple[torch.Tensor, torch.Tensor]:
        raise AutoGuideError(
            f"{type(self).__name__}: a flow has no closed-form median or quantiles. Estimate "
            "them from draws instead: Predictive(model, guide=guide, num_samples=1000)."
        )


class AutoIAFNormal(AutoNormalizingFlow):
    """An inverse autoregressive flow guide: a standard Normal through ``num_transforms``
    affine autoregressive transforms with hidden layers ``hidden_dim`` (an int or a list;
    default ``[3 * latent_dim + 1]``). Other keyword arguments go to
    ``affine_autoregressive`` (``log_scale_min_clip``, ``stable``, ...). ``init_loc_fn`` is
    accepted for Pyro compatibility and, as there, has no effect (a ``FutureWarning`` says so).

    >>> import engine, engine.distributions as dist
    >>> engine.clear_param_store()
    >>> def model():
    ...     engine.sample("x", dist.Normal(torch.zeros(2), 1.0).to_event(1))
    >>> guide = AutoIAFNormal(model, hidden_dim=5, num_transforms=2, model_args=())
    >>> len(guide.transform), guide.transform[0].arn.hidden_dims
    (2, [5])
    """

    def __init__(
        self,
        model: Callable,
        hidden_dim: int | Sequence[int] | None = None,
        init_loc_fn: InitFn | None = None,
        num_transforms: int = 1,
        *,
        create_plates: Callable | None = None,
        model_args: tuple | None = None,
        model_kwargs: dict | None = None,
        **init_transform_kwargs: Any,
    ):
        if init_loc_fn is not None:
            warnings.warn(
                "AutoIAFNormal: init_loc_fn has no effect (the flow starts near the identity "
                "around zero); leave it out.",
                FutureWarning,
                stacklevel=2,
            )
        if not (isinstance(num_transforms, int) and num_transforms > 0):
            raise AutoGuideError(
                f"AutoIAFNormal: num_transforms must be a positive int, got {num_transforms!r}"
            )
        hidden_dims = [hidden_dim] if isinstance(hidden_dim, int) else hidden_dim

        def flow(latent_dim: int) -> ComposeTransformModule:
            layers = [
                affine_autoregressive(latent_dim, hidden_dims, **init_transform_kwargs)
                for _ in range(num_transforms)
            ]
            return ComposeTransformModule(layers)

        super().__init__(
            model,
            flow,
            create_plates=create_plates,
            model_args=model_args,
            model_kwargs=model_kwargs,
        )
