"""dnc_core: pure-PyTorch recurrent memory cores and the actor-critic policy over them.

No Gymnasium, no ROS, no file I/O here (DESIGN.md §1).
"""

from . import addressing
from .core import RecurrentCore, apply_reset
from .dnc import DNCCore, DNCState
from .gru import GRUCore, GRUState
from .lstm import LSTMCore, LSTMState
from .ntm import NTMCore, NTMState
from .policy import ActionSpec, ActorCritic, PolicyOutput, RunningNorm

CORES = {"dnc": DNCCore, "lstm": LSTMCore, "gru": GRUCore, "ntm": NTMCore}


def make_core(kind: str, **config) -> RecurrentCore:
    """Build a core by name (``"dnc"``, ``"lstm"``, ``"gru"`` or ``"ntm"``) from its config
    dict."""
    if kind not in CORES:
        raise ValueError(f"unknown core {kind!r}, expected one of {sorted(CORES)}")
    return CORES[kind](**config)


__all__ = ["addressing", "RecurrentCore", "apply_reset", "DNCCore", "DNCState", "GRUCore",
           "GRUState", "LSTMCore", "LSTMState", "NTMCore", "NTMState", "CORES", "make_core",
           "ActionSpec", "ActorCritic", "PolicyOutput", "RunningNorm"]
