from .meta_weight_hook import MetaWeightHook

__all__ = ['MetaWeightHook']
