from .kd_batch import AgentTransition, KDBatch, KDStep, TeacherWeights

__all__ = ['AgentTransition', 'KDBatch', 'KDStep', 'TeacherWeights']
