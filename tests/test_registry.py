"""Configs reach mmkd_ext types through default_scope or custom_imports alone."""
import textwrap

from conftest import STUDENT_CONFIG, run_tool

BUILD_SCRIPT = '''
import sys
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope
cfg = Config.fromfile({config!r})
# Config.fromfile itself imports `custom_imports`; nothing else imports mmkd_ext.
assert ('mmkd_ext' in sys.modules) == bool(cfg.get('custom_imports'))
init_default_scope(cfg.default_scope)
model = MODELS.build(cfg.model)
print('BUILT', type(model).__name__, type(model.weighting).__name__)
'''


def write_config(path, header, model_type, checkpoint):
    path.write_text(header + textwrap.dedent(f'''
        model = dict(
            type={model_type!r},
            student={STUDENT_CONFIG!r},
            teachers=[dict(config={STUDENT_CONFIG!r}, checkpoint={checkpoint!r})],
            weighting=dict(type='EntropyWeighting'))
    '''))
    return str(path)


def test_default_scope_mmkd_ext_and_custom_imports(tmp_path):
    from mmkd_ext.utils.model_builder import save_initialised_checkpoint
    checkpoint = save_initialised_checkpoint(STUDENT_CONFIG, str(tmp_path / 's.pth'))
    cases = {
        # No import of mmkd_ext anywhere: the registry's locations load it.
        'scope': ("default_scope = 'mmkd_ext'\n", 'MultiTeacherDistiller'),
        # Another library's scope, custom_imports and a scoped type name.
        'imports': ("default_scope = 'mmpretrain'\ncustom_imports = dict(imports=['mmkd_ext'])\n",
                    'mmkd_ext.MultiTeacherDistiller'),
    }
    for name, (header, model_type) in cases.items():
        config = write_config(tmp_path / f'{name}.py', header, model_type, checkpoint)
        result = run_tool('-c', BUILD_SCRIPT.format(config=config))
        assert result.returncode == 0, f'{name}: {result.stderr[-3000:]}'
        assert 'BUILT MultiTeacherDistiller EntropyWeighting' in result.stdout


IMPORT_SCRIPT = '''
import sys
import mmkd_ext
print('LOADED', *(name in sys.modules for name in
                  ('mmdet', 'mmseg', 'mmkd_ext.datasets', 'mmkd_ext.synthetic_data')))
from mmengine.fileio import get_file_backend
from mmengine.runner.checkpoint import CheckpointLoader
from mmkd_ext.utils.atomic_io import AtomicLocalBackend
from mmkd_ext.utils.checkpoint import load_from_local
print('INSTALLED', CheckpointLoader._schemes[''] is load_from_local,
      isinstance(get_file_backend('a.pth'), AtomicLocalBackend))
from mmengine.registry import DATASETS
dataset = DATASETS.get('mmkd_ext.CheckedCocoDataset')
print('LAZY', dataset.__module__, 'mmdet' in sys.modules)
'''


def test_import_loads_no_task_library():
    """``import mmkd_ext`` loads neither mmdet nor mmseg nor the generators, installs
    the checkpoint I/O, and a config naming a checked dataset still finds it."""
    result = run_tool('-c', IMPORT_SCRIPT)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = dict(line.split(' ', 1) for line in result.stdout.splitlines())
    assert lines['LOADED'] == 'False False False False'
    assert lines['INSTALLED'] == 'True True'
    assert lines['LAZY'] == 'mmkd_ext.datasets.coco_check True'
