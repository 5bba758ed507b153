"""``DiscreteCosineReparam`` and ``HaarReparam``: a site seen in a cosine or a Haar wavelet basis.

Both are :class:`UnitJacobianReparam` with an orthonormal transform along one dim, drawing the
auxiliary site ``{name}_dct`` or ``{name}_haar``. For a smooth series (a random walk, a Gaussian
process on a grid) the coefficients in these bases are far less correlated than the values, so a
mean-field guide or HMC's diagonal mass matrix fits them much better.

>>> import torch
>>> _ = torch.manual_seed(0)
>>> walk = torch.randn(4000, 16).cumsum(-1)  # random walks: the values correlate strongly
>>> def mean_correlation(x):  # mean |correlation| between different coordinates
...     return float((torch.corrcoef(x.T).abs() - torch.eye(16)).mean())
>>> mean_correlation(walk) > 0.5, mean_correlation(DiscreteCosineTransform()(walk)) < 0.05
(True, True)
"""

from __future__ import annotations

from engine.distributions.orthonormal_transforms import DiscreteCosineTransform, HaarTransform
from engine.infer.reparam.unit_jacobian import UnitJacobianReparam


class DiscreteCosineReparam(UnitJacobianReparam):
    """Draw ``{name}_dct``, the site's orthonormal DCT-II coefficients along ``dim``; ``smooth``
    reweights frequencies as :class:`DiscreteCosineTransform` does.

    >>> import torch, engine, engine.distributions as dist
    >>> def model():
    ...     return engine.sample("x", dist.Normal(torch.zeros(4), 1.0).to_event(1))
    >>> tr = engine.poutine.trace(
    ...     engine.poutine.reparam(model, {"x": DiscreteCosineReparam()})).get_trace()
    >>> coefficients = DiscreteCosineTransform()(tr.nodes["x"]["value"])
    >>> bool(torch.allclose(tr.nodes["x_dct"]["value"], coefficients, atol=1e-6))
    True
    """

    def __init__(
        self, dim: int = -1, smooth: float = 0.0, *, experimental_allow_batch: bool = False
    ):
        transform = DiscreteCosineTransform(dim=dim, smooth=smooth, cache_size=1)
        super().__init__(transform, "dct", experimental_allow_batch=experimental_allow_batch)


class HaarReparam(UnitJacobianReparam):
    """Draw ``{name}_haar``, the site's orthonormal Haar wavelet coefficients along ``dim``
    (``flip`` reverses the series first).

    >>> import torch, engine, engine.distributions as dist
    >>> def model():
    ...     return engine.sample("x", dist.Normal(torch.zeros(4), 1.0).to_event(1))
    >>> tr = engine.poutine.trace(engine.poutine.reparam(model, {"x": HaarReparam()})).get_trace()
    >>> bool(torch.allclose(tr.nodes["x_haar"]["value"], HaarTransform()(tr.nodes["x"]["value"])))
    True
    """

    def __init__(
        self, dim: int = -1, flip: bool = False, *, experimental_allow_batch: bool = False
    ):
        transform = HaarTransform(dim=dim, flip=flip, cache_size=1)
        super().__init__(transform, "haar", experimental_allow_batch=experimental_allow_batch)
