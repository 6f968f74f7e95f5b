from .hypergradient import (APPROXIMATIONS, HYPERGRADIENT_MODES,
                            finite_difference_objective, meta_objective)
from .lookahead import (AdamMirror, OptimizerMirror, SGDMirror, differentiable_steps,
                        lookahead_task_loss, mirror_optimizer)
from .second_order import (SUBSTITUTES, SecondOrderAudit, SecondOrderError, SecondOrderReport,
                           Substitute, twice_differentiable_ops)

__all__ = ['OptimizerMirror', 'SGDMirror', 'AdamMirror', 'mirror_optimizer',
           'differentiable_steps', 'lookahead_task_loss', 'SUBSTITUTES', 'Substitute',
           'twice_differentiable_ops', 'SecondOrderAudit', 'SecondOrderReport',
           'SecondOrderError', 'HYPERGRADIENT_MODES', 'APPROXIMATIONS', 'meta_objective',
           'finite_difference_objective']
