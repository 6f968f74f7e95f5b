from .meta_weight_hook import MetaWeightHook
from .non_finite import SkipNonFiniteStepsHook
from .rl_agent_hook import RLAgentHook

__all__ = ['MetaWeightHook', 'RLAgentHook', 'SkipNonFiniteStepsHook']
