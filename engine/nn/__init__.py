"""``engine.nn``: Pyro's ``pyro.nn`` networks for normalizing flows.

``AutoRegressiveNN`` and ``ConditionalAutoRegressiveNN`` (MADE) feed autoregressive flows;
``DenseNN`` and ``ConditionalDenseNN`` feed coupling and conditional flows.

>>> import torch
>>> from engine.nn import DenseNN
>>> DenseNN(2, [4], param_dims=[3])(torch.zeros(2)).shape
torch.Size([3])
"""

from engine.nn.auto_reg_nn import AutoRegressiveNN, ConditionalAutoRegressiveNN, MaskedLinear
from engine.nn.dense_nn import ConditionalDenseNN, DenseNN

__all__ = [
    "AutoRegressiveNN",
    "ConditionalAutoRegressiveNN",
    "ConditionalDenseNN",
    "DenseNN",
    "MaskedLinear",
]
