"""The shape signature of a model's arguments: what about them can change the model's structure.

Two calls whose arguments have equal signatures draw sites of the same shapes (for a model whose
structure depends only on its arguments' shapes and its int/bool/str arguments, as Pyro's
tutorials ask of a model run by a JIT ELBO). An autoguide checks its sites again when the
signature is new; a compiled ELBO compiles once per signature.

Floats are left out: an annealing factor passed on every step must not count as a change.

>>> import torch
>>> a = shape_signature(((torch.zeros(3),), {"length": 3, "beta": 0.5}))
>>> a == shape_signature(((torch.ones(3),), {"length": 3, "beta": 0.9}))
True
>>> a == shape_signature(((torch.zeros(4),), {"length": 4, "beta": 0.5}))
False
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import torch

# Longer sequences are summarised by their type and length (a list of 10,000 tensors would make
# a signature as slow to compare as the step it guards).
_MAX_ITEMS = 16


def shape_signature(value: Any) -> Hashable:
    """A hashable summary of ``value``: tensor shapes, and the values of ints, bools, strings and
    None, through tuples, lists and dicts; other objects by their type.

    >>> import torch
    >>> shape_signature([torch.zeros(2, 3), 4, None])
    (<class 'list'>, (torch.Size([2, 3]), 4, None))
    """
    if isinstance(value, torch.Tensor):
        return value.shape
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, tuple | list):
        if len(value) > _MAX_ITEMS:
            return type(value), len(value)
        return type(value), tuple(shape_signature(v) for v in value)
    if isinstance(value, dict):
        if len(value) > _MAX_ITEMS:
            return dict, tuple(value)
        return dict, tuple((k, shape_signature(v)) for k, v in value.items())
    return type(value)
