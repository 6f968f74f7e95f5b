"""Building the distiller's parts from their configs, with errors that name the config key."""
import copy
import difflib
from typing import Union


def build_component(registry, cfg: dict, key: str, kind: Union[type, str]):
    """Build a part of the distiller; unprefixed types are looked up in mmkd_ext.

    An unknown type is refused naming the config ``key``, the registered types of
    that ``kind`` (subclasses of a class, or classes of a package such as
    ``'mmkd_ext.models.losses'``) and the closest names.
    """
    cfg = copy.deepcopy(dict(cfg))
    cfg.setdefault('_scope_', 'mmkd_ext')
    type_name = cfg.get('type')
    if isinstance(type_name, str) and registry.get(type_name) is None:
        def of_kind(cls) -> bool:
            if isinstance(kind, str):
                return cls.__module__.startswith(kind + '.')
            return isinstance(cls, type) and issubclass(cls, kind)
        known = sorted(n for n, c in registry.module_dict.items() if of_kind(c))
        close = difflib.get_close_matches(type_name.split('.')[-1], known, n=3, cutoff=0.5)
        hint = f' Did you mean {" or ".join(close)}?' if close else ''
        raise KeyError(f'{key}: unknown type {type_name!r}.{hint} Registered: '
                       f'{", ".join(known)}.')
    return registry.build(cfg)
