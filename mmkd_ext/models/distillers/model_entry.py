"""The student and teacher entries of the distiller's config."""
from typing import NamedTuple, Optional, Union


class ModelEntry(NamedTuple):
    """A teacher or student entry of the distiller's config."""
    config: Union[str, dict]
    checkpoint: Optional[str] = None
    name: Optional[str] = None
    cfg_options: Optional[dict] = None

    @classmethod
    def parse(cls, spec) -> 'ModelEntry':
        """An entry from ``'path'``, a model dict or a
        ``dict(config=..., checkpoint=..., name=..., cfg_options=...)``."""
        if isinstance(spec, dict) and 'config' in spec:
            unknown = set(spec) - set(cls._fields)
            if unknown:
                raise KeyError(f'Unknown keys {sorted(unknown)} in a teacher/student entry; '
                               f'allowed: {", ".join(cls._fields)}.')
            return cls(**spec)
        return cls(spec)
