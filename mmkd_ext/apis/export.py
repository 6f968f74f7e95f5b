"""Turn a training checkpoint into a plain model checkpoint."""
import os
import os.path as osp

import torch

from mmkd_ext.utils.checkpoint import model_state_dict, safe_torch_load


def export_student(src: str, dst: str) -> dict:
    """Write the weights of ``src`` as a checkpoint the model's own library loads.

    For a distiller checkpoint the ``student.`` weights are kept (adapters and
    weighting networks dropped) with the prefix removed; any other checkpoint keeps
    its whole state dict. Optimizer and message-hub state are dropped; ``meta`` keeps
    the dataset meta (class names) that ``init_model`` reads.

    Returns:
        ``dict(num_tensors=..., from_distiller=...)``.
    """
    checkpoint = safe_torch_load(src, map_location='cpu')
    state, from_distiller = model_state_dict(checkpoint)
    meta = {k: v for k, v in checkpoint.get('meta', {}).items()
            if k in ('dataset_meta', 'epoch', 'iter', 'mmengine_version', 'seed')}
    os.makedirs(osp.dirname(osp.abspath(dst)), exist_ok=True)
    tmp = dst + '.tmp'
    torch.save(dict(state_dict=state, meta=meta), tmp)
    os.replace(tmp, dst)  # never leave a half-written checkpoint behind
    return dict(num_tensors=len(state), from_distiller=from_distiller)
