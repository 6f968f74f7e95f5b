from .meta_weight_hook import MetaWeightHook
from .non_finite import SkipNonFiniteStepsHook
from .random_state import RandomStateHook
from .rl_agent_hook import RLAgentHook

__all__ = ['MetaWeightHook', 'RandomStateHook', 'RLAgentHook', 'SkipNonFiniteStepsHook']
