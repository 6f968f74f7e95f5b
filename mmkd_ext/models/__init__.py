"""Distillers, task views, teacher weightings, feature adapters and KD losses."""
from .adapters import *  # noqa: F401,F403
from .distillers import *  # noqa: F401,F403
from .losses import *  # noqa: F401,F403
from .task_views import *  # noqa: F401,F403
from .weighting import *  # noqa: F401,F403
