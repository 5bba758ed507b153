"""Matrix-exponential flows (Hoogeboom et al., 2020): ``y = expm(W) x`` for a learnable square
``W``. ``expm(W)`` is always invertible (``expm(W)^-1 = expm(-W)``) and
``log |det expm(W)| = trace(W)``, so both directions and the log-Jacobian are cheap; plain
(``MatrixExponential``/``matrix_exponential``) and conditional
(``ConditionalMatrixExponential``/``conditional_matrix_exponential``).

>>> t = matrix_exponential(3)
>>> x = torch.randn(4, 3)
>>> torch.allclose(t.inv(t(x)), x, atol=1e-5)
True
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.distributions import constraints

from engine.distributions.torch_transform import TransformModule
from engine.distributions.transforms._parametrized import (
    HypernetConditional,
    ParametrizedTransform,
    default_hidden_dims,
    dense_hypernet,
    unflatten_last,
    uniform_parameter,
)
from engine.errors import ArgumentError

_NORMALIZATIONS = ("none", "weight", "spectral")


def _check_options(owner: str, iterations: int, normalization: str, bound: float | None) -> None:
    if not isinstance(iterations, int) or iterations < 1:
        raise ArgumentError(f"{owner} needs iterations >= 1, got {iterations!r}")
    if normalization not in _NORMALIZATIONS:
        raise ArgumentError(
            f"{owner} got normalization={normalization!r}; choose one of {list(_NORMALIZATIONS)}"
        )
    if bound is not None and not bound > 0:
        raise ArgumentError(f"{owner} needs a positive bound, got {bound!r}")


class ConditionedMatrixExponential(ParametrizedTransform):
    """``y = expm(W) x`` with a given ``W`` of shape ``(..., D, D)``.

    ``normalization`` caps the norm of ``W`` at ``bound`` (default 1): ``'weight'`` its
    Frobenius norm, ``'spectral'`` its largest singular value; ``'none'`` uses ``W`` as it is.
    ``iterations`` is Pyro's number of power-series terms; here torch's ``matrix_exp`` computes
    the exponential to working precision, so the value only has to be a positive whole number.

    >>> W = torch.tensor([[0.0, 0.0], [0.0, 1.0]])
    >>> t = ConditionedMatrixExponential((W,))
    >>> t(torch.tensor([1.0, 1.0])), t.log_abs_det_jacobian(None, None)
    (tensor([1.0000, 2.7183]), tensor(1.))
    """

    domain = constraints.real_vector
    codomain = constraints.real_vector
    bijective = True

    def __init__(
        self,
        params: object,
        iterations: int = 8,
        normalization: str = "none",
        bound: float | None = None,
    ) -> None:
        _check_options(type(self).__name__, iterations, normalization, bound)
        super().__init__(params)
        self.iterations = iterations
        self.normalization = normalization
        self.bound = bound

    def weights(self) -> torch.Tensor:
        """``W`` after the normalization."""
        (w,) = self.params()
        if self.normalization == "none":
            return w
        if self.normalization == "weight":
            norm = torch.linalg.matrix_norm(w, ord="fro")
        else:
            norm = torch.linalg.matrix_norm(w, ord=2)
        bound = 1.0 if self.bound is None else self.bound
        scale = (bound / norm.clamp(min=torch.finfo(w.dtype).tiny)).clamp(max=1.0)
        return w * scale[..., None, None]

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        return (torch.linalg.matrix_exp(self.weights()) @ x.unsqueeze(-1)).squeeze(-1)

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        return (torch.linalg.matrix_exp(-self.weights()) @ y.unsqueeze(-1)).squeeze(-1)

    def log_abs_det_jacobian(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # det(expm(W)) = exp(trace(W)) > 0.
        trace = self.weights().diagonal(dim1=-2, dim2=-1).sum(-1)
        if x is None:
            return trace
        return trace.expand(torch.broadcast_shapes(trace.shape, x.shape[:-1]))


class MatrixExponential(ConditionedMatrixExponential, TransformModule):
    """A learnable ``y = expm(W) x`` on vectors of ``input_dim`` entries (options as for
    :class:`ConditionedMatrixExponential`).

    >>> MatrixExponential(3).weights().shape
    torch.Size([3, 3])
    """

    def __init__(
        self,
        input_dim: int,
        iterations: int = 8,
        normalization: str = "none",
        bound: float | None = None,
    ) -> None:
        super().__init__(None, iterations, normalization, bound)
        scale = 1.0 / input_dim
        self.weight = uniform_parameter(input_dim, input_dim, scale=scale)

    def params(self) -> tuple[torch.Tensor, ...]:
        return (self.weight,)


class ConditionalMatrixExponential(HypernetConditional):
    """``y = expm(W) x`` with ``W`` computed from the context by a network (one output of
    ``input_dim ** 2`` entries).

    >>> t = conditional_matrix_exponential(2, context_dim=3)
    >>> t.condition(torch.zeros(3))(torch.zeros(5, 2)).shape
    torch.Size([5, 2])
    """

    conditioned = ConditionedMatrixExponential
    count_params = 1

    def __init__(
        self,
        input_dim: int,
        nn: nn.Module,
        iterations: int = 8,
        normalization: str = "none",
        bound: float | None = None,
    ) -> None:
        _check_options(type(self).__name__, iterations, normalization, bound)
        super().__init__(nn, iterations=iterations, normalization=normalization, bound=bound)
        self.input_dim = input_dim

    def shape_params(self, outputs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        shape = (self.input_dim, self.input_dim)
        return (unflatten_last(outputs[0], shape, type(self).__name__),)


def matrix_exponential(
    input_dim: int, iterations: int = 8, normalization: str = "none", bound: float | None = None
) -> MatrixExponential:
    """A :class:`MatrixExponential` flow (Pyro's helper).

    >>> matrix_exponential(2, normalization="spectral", bound=0.5).bound
    0.5
    """
    return MatrixExponential(input_dim, iterations, normalization, bound)


def conditional_matrix_exponential(
    input_dim: int,
    context_dim: int,
    hidden_dims: Sequence[int] | None = None,
    iterations: int = 8,
    normalization: str = "none",
    bound: float | None = None,
) -> ConditionalMatrixExponential:
    """A :class:`ConditionalMatrixExponential` with a dense network from the context (hidden
    layers ``hidden_dims``, default ``[10 * input_dim, 10 * input_dim]``).

    >>> conditional_matrix_exponential(2, 3).nn.param_dims
    [4]
    """
    hidden_dims = default_hidden_dims(hidden_dims, input_dim)
    net = dense_hypernet(context_dim, hidden_dims, [input_dim * input_dim])
    return ConditionalMatrixExponential(input_dim, net, iterations, normalization, bound)
