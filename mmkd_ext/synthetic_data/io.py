"""Idempotent writing of the generated datasets."""
import json
import os
import os.path as osp
from typing import Callable, Dict


def write_once(root: str, meta: Dict, write: Callable[[], None]) -> Dict:
    """Call ``write()`` unless ``root/meta.json`` already records ``meta``; then
    record it (last, so an interrupted run is redone).

    Returns:
        ``meta`` with ``skipped=True`` when the dataset was already there.
    """
    meta_path = osp.join(root, 'meta.json')
    if osp.isfile(meta_path):
        with open(meta_path) as f:
            if json.load(f) == meta:
                return dict(meta, skipped=True)
    write()
    os.makedirs(root, exist_ok=True)
    with open(meta_path, 'w') as f:
        json.dump(meta, f, indent=2)
    return dict(meta, skipped=False)
