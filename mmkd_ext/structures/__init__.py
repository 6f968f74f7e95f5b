from .kd_batch import KDBatch, KDStep, TeacherWeights

__all__ = ['KDBatch', 'KDStep', 'TeacherWeights']
