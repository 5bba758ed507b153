"""``engine.poutine``: the effect handlers, the ``Trace`` they produce, and their messengers.

>>> from engine import poutine
>>> callable(poutine.trace) and callable(poutine.condition)
True
"""

# Pyro's submodules, reachable as attributes as in Pyro (``poutine.util.enum_extend``,
# ``poutine.messenger.Messenger``, ``poutine.runtime.NonlocalExit``).
from engine.errors import ReplayError
from engine.poutine import condition_messenger as condition_messenger
from engine.poutine import do_messenger as do_messenger
from engine.poutine import escape_messenger as escape_messenger
from engine.poutine import mask_messenger as mask_messenger
from engine.poutine import messenger as messenger
from engine.poutine import reparam_messenger as reparam_messenger
from engine.poutine import runtime as runtime
from engine.poutine import scale_messenger as scale_messenger
from engine.poutine import substitute_messenger as substitute_messenger
from engine.poutine import uncondition_messenger as uncondition_messenger
from engine.poutine import util as util
from engine.poutine.block_messenger import BlockMessenger, EscapeMessenger, NonlocalExit
from engine.poutine.broadcast_messenger import BroadcastMessenger
from engine.poutine.conditioning import (
    ConditionMessenger,
    DoMessenger,
    SubstituteMessenger,
    UnconditionMessenger,
)
from engine.poutine.enum_messenger import EnumMessenger
from engine.poutine.equalize_messenger import EqualizeMessenger
from engine.poutine.handlers import (
    block,
    broadcast,
    condition,
    do,
    enum,
    equalize,
    escape,
    infer_config,
    lift,
    markov,
    mask,
    queue,
    reparam,
    replay,
    scale,
    seed,
    substitute,
    trace,
    uncondition,
)
from engine.poutine.infer_config_messenger import InferConfigMessenger
from engine.poutine.lift_messenger import LiftMessenger
from engine.poutine.markov_messenger import MarkovMessenger
from engine.poutine.plate_messenger import PlateMessenger
from engine.poutine.reparam_messenger import ReparamMessenger
from engine.poutine.replay_messenger import ReplayMessenger
from engine.poutine.runtime import get_mask
from engine.poutine.seed_messenger import SeedMessenger
from engine.poutine.trace_messenger import TraceHandler, TraceMessenger
from engine.poutine.trace_struct import Trace
from engine.poutine.weighting import MaskMessenger, ScaleMessenger
from engine.runtime import Messenger, apply_stack

__all__ = [
    "BlockMessenger",
    "BroadcastMessenger",
    "ConditionMessenger",
    "DoMessenger",
    "EnumMessenger",
    "EqualizeMessenger",
    "EscapeMessenger",
    "InferConfigMessenger",
    "LiftMessenger",
    "MarkovMessenger",
    "MaskMessenger",
    "Messenger",
    "NonlocalExit",
    "PlateMessenger",
    "ReparamMessenger",
    "ReplayError",
    "ReplayMessenger",
    "ScaleMessenger",
    "SeedMessenger",
    "SubstituteMessenger",
    "Trace",
    "TraceHandler",
    "TraceMessenger",
    "UnconditionMessenger",
    "apply_stack",
    "block",
    "broadcast",
    "condition",
    "do",
    "enum",
    "equalize",
    "escape",
    "get_mask",
    "infer_config",
    "lift",
    "markov",
    "mask",
    "queue",
    "reparam",
    "replay",
    "scale",
    "seed",
    "substitute",
    "trace",
    "uncondition",
]
