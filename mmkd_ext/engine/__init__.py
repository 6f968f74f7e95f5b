"""Training machinery: the hooks that train the weighting methods and the
differentiable optimizer mirror of MMKD's look-ahead."""
from .hooks import *  # noqa: F401,F403
