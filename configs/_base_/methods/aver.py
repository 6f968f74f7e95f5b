# AVER: every teacher weighs 1/K, the baseline. A task's distillation config composes
# a method's file with its own base and puts the method's weighting in the model:
#   _base_ = ['<the task's _base_/distill file>', '<this file>']
#   model = dict(weighting=_base_.pop('weighting'))  # popped: no stray top-level key
# The method's custom_hooks (if any) are inherited as they are, or restated with
# dict(_base_.custom_hooks[0], ...) to change a task-specific value.
weighting = dict(type='UniformWeighting')
