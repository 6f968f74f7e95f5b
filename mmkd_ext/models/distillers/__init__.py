from .contract import DistillerContract
from .feature_distillation import FeatureDistillation
from .model_entry import ModelEntry
from .multi_teacher_distiller import MultiTeacherDistiller
from .step_health import NON_FINITE_POLICIES, StepHealth
from .teacher_pool import TeacherPool

__all__ = [
    'MultiTeacherDistiller', 'DistillerContract', 'TeacherPool', 'FeatureDistillation',
    'StepHealth', 'NON_FINITE_POLICIES', 'ModelEntry'
]
