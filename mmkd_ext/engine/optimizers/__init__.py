from .lookahead import (AdamMirror, OptimizerMirror, SGDMirror, differentiable_steps,
                        lookahead_task_loss, mirror_optimizer)

__all__ = ['OptimizerMirror', 'SGDMirror', 'AdamMirror', 'mirror_optimizer',
           'differentiable_steps', 'lookahead_task_loss']
