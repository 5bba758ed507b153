"""Keeping a ``PyroModule``'s parameters and the active param store on one tensor each.

A module parameter (a plain ``nn.Parameter``, or the ``<name>_unconstrained`` tensor of a
``PyroParam``) and the param store entry under its full name (``"linear.weight"``) are the same
tensor object once the module has been called: an optimizer over the store trains the module,
``module.parameters()`` and ``state_dict()`` show what the store holds.

Which side wins when they differ follows Pyro: the store (a file loaded into it, or another
module of the same names, gives its values to the module), except right after
``load_state_dict``, where the loaded values win. The store in question is the *active* one
(:func:`engine.get_param_store`), so a notebook run with a store of its own trains the module's
copy there.

>>> import torch, engine
>>> engine.clear_param_store()
>>> holder = torch.nn.Module()
>>> holder.w = torch.nn.Parameter(torch.zeros(2))
>>> bind_to_store(holder, "w", "w", torch.distributions.constraints.real, None, False)
True
>>> engine.get_param_store()["w"] is holder.w
True
"""

from __future__ import annotations

import weakref

import torch
from torch.distributions.constraints import Constraint

from engine.errors import ParamError, fmt_shape
from engine.params import ParamStoreDict, get_param_store, param_with_module_name

__all__ = ["bind_to_store", "drop_from_store", "drop_subtree_from_store"]


def _register(
    store: ParamStoreDict,
    fullname: str,
    leaf: torch.Tensor,
    constraint: Constraint,
    event_dim: int | None,
) -> None:
    # set_state keeps the tensor itself (no copy): that is what ties module and store together.
    store.set_state(
        {
            "params": {fullname: leaf},
            "constraints": {fullname: constraint},
            "event_dims": {fullname: event_dim},
        }
    )


def _stored_leaf(store: ParamStoreDict, fullname: str, constraint: Constraint) -> torch.Tensor:
    # get_param refuses a constraint other than the stored one, naming the param and the fix.
    return store.get_param(fullname, constraint=constraint).unconstrained()


def bind_to_store(
    module: torch.nn.Module,
    key: str,
    fullname: str,
    constraint: Constraint,
    event_dim: int | None,
    module_wins: bool,
) -> bool:
    """Make ``module._parameters[key]`` and the active store's ``fullname`` one tensor.

    The store's tensor wins unless ``module_wins`` (values just loaded into the module). A
    module tensor that needs no gradient (frozen) is never put into the store. A tensor another
    store holds is copied before this store takes it, so two stores (two notebook runs of one
    model) never train one tensor. Returns whether the store holds the param now.
    """
    leaf = module._parameters[key]
    store = get_param_store()
    holders = module.__dict__.setdefault("_pyro_store_of", {})
    if fullname in store and not module_wins:
        stored = _stored_leaf(store, fullname, constraint)
        if stored is not leaf:
            _check_same_shape(module, key, fullname, stored, leaf)
            if not isinstance(stored, torch.nn.Parameter):
                # A module holds parameters as nn.Parameter; the wrapper shares the stored
                # tensor's memory, and takes its place in the store so both stay one object.
                stored = torch.nn.Parameter(stored, requires_grad=stored.requires_grad)
                _register(store, fullname, stored, constraint, event_dim)
            module._parameters[key] = stored
        holders[key] = weakref.ref(store)
        return True
    if not leaf.requires_grad:
        return fullname in store and _stored_leaf(store, fullname, constraint) is leaf
    holder = holders.get(key)
    holder = holder() if holder is not None else None
    if holder is not None and holder is not store and holder.param_name(leaf) is not None:
        with torch.no_grad():
            leaf = torch.nn.Parameter(leaf.detach().clone())
        module._parameters[key] = leaf
    _register(store, fullname, leaf, constraint, event_dim)
    holders[key] = weakref.ref(store)
    return True


def _check_same_shape(
    module: torch.nn.Module, key: str, fullname: str, stored: torch.Tensor, leaf: torch.Tensor
) -> None:
    if stored.shape != leaf.shape:
        raise ParamError(
            f"param {fullname!r}: the param store holds shape {fmt_shape(stored.shape)} but "
            f"the module attribute {key!r} of {type(module).__name__} has shape "
            f"{fmt_shape(leaf.shape)}: the stored value belongs to another module of the same "
            "names (an earlier build of the model?). Clear the param store "
            f"(pyro.clear_param_store()) or delete the entry (del pyro.get_param_store()"
            f"[{fullname!r}]) before calling this module."
        )


def drop_from_store(fullname: str) -> None:
    """Remove ``fullname`` from the active store, if there.

    >>> import torch, engine
    >>> engine.get_param_store()["gone"] = torch.zeros(1)
    >>> drop_from_store("gone"); "gone" in engine.get_param_store()
    False
    """
    store = get_param_store()
    if fullname in store:
        del store[fullname]


def drop_subtree_from_store(fullname: str) -> None:
    """Remove the params of the submodule ``fullname`` from the active store: those named
    ``fullname.<...>`` (a ``PyroModule``'s) and ``fullname$$$<...>`` (a plain module's).

    >>> import torch, engine
    >>> store = engine.get_param_store()
    >>> for name in ["net.w", "net$$$b", "net2.w"]:
    ...     store[name] = torch.zeros(1)
    >>> drop_subtree_from_store("net"); sorted(n for n in store if n.startswith("net"))
    ['net2.w']
    """
    store = get_param_store()
    prefixes = (f"{fullname}.", param_with_module_name(fullname, ""))
    for name in [n for n in store if n.startswith(prefixes)]:
        del store[name]
