"""``Distribution``: the abstract interface every engine distribution offers (Pyro's base class).

It states what the inference code relies on (draw by calling, ``log_prob``, ``score_parts``,
enumeration) independently of torch, so that code can type-check against it. Concrete classes get
most of it from ``torch.distributions.Distribution`` through
:class:`~engine.distributions.torch_distribution.TorchDistribution`.
"""

from __future__ import annotations

from typing import Any

import torch

from engine.distributions.score_parts import ScoreParts


class Distribution:
    """Base class of parameterized distributions: draw with ``d()``, score with ``log_prob``.

    Subclasses implement ``sample`` and ``log_prob`` (and ``rsample`` with
    ``has_rsample = True`` when draws are differentiable in the parameters).

    >>> import engine.distributions as dist
    >>> isinstance(dist.Normal(0.0, 1.0), Distribution)
    True
    """

    has_rsample = False
    has_enumerate_support = False

    def __call__(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        """Draw a value: reparameterized when the distribution supports it.

        >>> import engine.distributions as dist
        >>> dist.Normal(0.0, 1.0)((2,)).shape
        torch.Size([2])
        """
        if self.has_rsample:
            return self.rsample(*args, **kwargs)
        return self.sample(*args, **kwargs)

    def sample(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        """Draw a value (without gradient through the parameters)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement sample()")

    def log_prob(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        """Log-density (or log-mass) of ``x``, one entry per batch element."""
        raise NotImplementedError(f"{type(self).__name__} does not implement log_prob()")

    def score_parts(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> ScoreParts:
        """Split ``log_prob(x)`` for gradient estimation.

        A reparameterized draw gets its gradient through the value (the entropy term); any other
        draw needs the score-function term.

        >>> import engine.distributions as dist
        >>> dist.Normal(0.0, 1.0).score_parts(torch.tensor(0.0)).score_function
        0
        """
        log_prob = self.log_prob(x, *args, **kwargs)
        if self.has_rsample:
            return ScoreParts(log_prob=log_prob, score_function=0, entropy_term=log_prob)
        return ScoreParts(log_prob=log_prob, score_function=log_prob, entropy_term=0)

    def enumerate_support(self, expand: bool = True) -> torch.Tensor:
        """All values of a discrete, finite support, stacked along a new leftmost dim."""
        raise NotImplementedError(f"{type(self).__name__} does not implement enumerate_support()")

    def conjugate_update(self, other: Distribution) -> tuple[Distribution, torch.Tensor]:
        """Fuse ``other``, a density over the same variable, into this one: returns ``(fg,
        log_normalizer)`` with ``log_prob(x) + other.log_prob(x) == fg.log_prob(x) +
        log_normalizer`` (see :mod:`engine.distributions.conjugate_update`). Beta, Dirichlet and
        Gamma have it; other families raise ``NotImplementedError``.

        >>> import engine.distributions as dist
        >>> dist.Normal(0.0, 1.0).conjugate_update(dist.Normal(0.0, 1.0))
        Traceback (most recent call last):
        NotImplementedError: Normal has no conjugate_update (Beta, Dirichlet and Gamma have one)
        """
        raise NotImplementedError(
            f"{type(self).__name__} has no conjugate_update (Beta, Dirichlet and Gamma have one)"
        )
