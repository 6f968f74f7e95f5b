from .lookahead import (AdamMirror, OptimizerMirror, SGDMirror, differentiable_steps,
                        lookahead_task_loss, mirror_optimizer)
from .second_order import (SUBSTITUTES, SecondOrderAudit, SecondOrderError, SecondOrderReport,
                           Substitute, twice_differentiable_ops)

__all__ = ['OptimizerMirror', 'SGDMirror', 'AdamMirror', 'mirror_optimizer',
           'differentiable_steps', 'lookahead_task_loss', 'SUBSTITUTES', 'Substitute',
           'twice_differentiable_ops', 'SecondOrderAudit', 'SecondOrderReport',
           'SecondOrderError']
