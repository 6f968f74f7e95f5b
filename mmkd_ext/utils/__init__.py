from .atomic_io import AtomicLocalBackend, atomic_write, latest_checkpoint
from .checkpoint import (ALLOWED_CHECKPOINT_GLOBALS, UnsafeCheckpointError,
                         load_model_weights, safe_torch_load)
from .model_builder import build_model, resolve_config_path
from .recorder import OutputRecorder

__all__ = [
    'AtomicLocalBackend', 'atomic_write', 'latest_checkpoint',
    'ALLOWED_CHECKPOINT_GLOBALS', 'UnsafeCheckpointError', 'load_model_weights',
    'safe_torch_load', 'build_model', 'resolve_config_path', 'OutputRecorder'
]
