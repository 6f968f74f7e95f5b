"""Every command, path, link and config snippet in README.md and docs/ is real.

Checked here, without training anything (a few seconds):

- every shell command, in a ```bash / ```shell / ```sh block or in an inline code span
  that starts one (``python tools/...``, ``bash tools/...``, ``tools/*.sh ...``,
  ``make ...``, ``torchrun ...``): the tool exists; every config path it names exists;
  its arguments are accepted by the tool's own argparse parser (the tool's ``main()``
  runs until its parser has parsed them, or for tools/benchmark.py until its
  ``check_args`` has checked them; tools/demo.py's ``--methods`` against its task's
  runs); ``tools/dist_train.sh`` / ``dist_test.sh`` arguments by tools/train.py's /
  tools/test.py's parser; ``make`` targets are in the Makefile; pinned ``pip install``
  versions are those of requirements/constraints.txt. Synopsis lines are read with
  ``[...]`` optional, ``a|b`` the first choice, ``...`` dropped and the placeholders
  of ``PLACEHOLDERS`` filled in;
- every relative link points at an existing file, and its ``#anchor`` at a heading;
- every repository path in an inline code span exists (``<name>`` and ``*`` match
  anything, ``{a,b}`` either);
- every class name of mmkd_ext's kinds in an inline code span (``...Weighting``,
  ``...Hook``, ``...View``...) is a class of mmkd_ext (or a library's, listed below);
- every Python snippet parses, and every ``dict(type=...)`` in it names a registered
  type that takes the snippet's arguments;
- no block (code or table) of three lines or more stands in two places.

Which tests run the documented commands for real (small data, a few iterations):

- ``python tools/train.py`` / ``tools/test.py`` / ``tools/export_student.py`` on a
  classification distillation config: tests/test_tools/test_tools.py (the
  ``trained_kd`` fixture, ``test_test_tool_evaluates_the_student``,
  ``test_exported_student_loads_in_plain_mmpretrain``); on every task's configs:
  tests/test_configs/test_task_configs.py;
- ``python tools/train.py CONFIG --resume``: tests/test_engine/test_faults.py
  (``test_sigkill_after_a_checkpoint_then_resume_equals_an_uninterrupted_run``);
- ``python tools/train.py ... --amp`` without CUDA:
  test_tools.py::test_amp_without_cuda_is_a_clear_message;
- ``bash tools/dist_train.sh CONFIG 2`` (gloo on CPU):
  test_tools.py::test_dist_train_runs_two_cpu_processes;
- ``python tools/make_data.py classification`` / ``segmentation``:
  test_tools.py::test_make_data_cli_is_idempotent,
  tests/test_datasets/test_cityscapes_data.py::test_make_data_cli_writes_segmentation;
- ``tools/plot_teacher_weights.py``'s plot:
  test_tools.py::test_teacher_weight_plot_reads_the_training_log;
- ``python tools/demo.py --methods ...``:
  test_tools.py::test_demo_reuses_finished_runs_and_distils_with_the_chosen_methods;
- ``python tools/benchmark.py --overhead ...``:
  test_tools.py::test_overhead_benchmark_prints_each_phase_against_the_bound;
  ``--quick``: tests/test_tools/test_benchmark.py::
  test_benchmark_reuses_finished_runs_and_reports_a_failed_one;
- the real-data configs (COCO, Cityscapes), trained with their checkpoints and data
  overridden: tests/test_configs/test_coco_zoo_configs.py,
  tests/test_configs/test_cityscapes_zoo_configs.py.

``make demo``, ``make setup`` and ``make test`` are the README's own commands, run by
hand. Not run by any test (hours of CPU time, GPUs or real data): ``make
demo-detection``, ``make demo-segmentation``, the full benchmark, the benchmark lines
that made the docs' tables, ``tools/dist_test.sh`` and the multi-GPU commands; they
are checked here as above.
"""
import argparse
import ast
import contextlib
import glob
import importlib.util
import inspect
import io
import os
import re
import shlex
import sys
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / 'README.md', *sorted((ROOT / 'docs').rglob('*.md'))]

#: What the docs' placeholders stand for when their command is parsed.
PLACEHOLDERS = {
    'CONFIG': 'configs/classification/distill/kd_aver_r18w8_shapes10.py',
    'CHECKPOINT': 'work_dirs/example/epoch_1.pth',
    'CKPT': 'work_dirs/example/epoch_1.pth',
    'CKPT.pth': 'work_dirs/example/epoch_1.pth',
    'DIR': 'work_dirs/example',
    'N': '2',
    'J': '2',
    'GPUS': '2',
    'KEY=VALUE': 'train_cfg.max_epochs=1',
}
#: Library classes the docs name next to mmkd_ext's (checked by their suffix).
LIBRARY_CLASSES = {'CocoDataset', 'CityscapesDataset', 'ConcatDataset', 'CustomDataset'}
#: Suffixes of the class names of mmkd_ext's kinds.
CLASS_SUFFIXES = ('Weighting', 'Hook', 'View', 'Adapter', 'Divergence', 'Policy',
                  'Distiller', 'Net', 'MSE', 'Dataset', 'Error')
#: How the shell tools hand their arguments to a Python tool:
#: (positional arguments before the pass-through ones, the Python tool, which
#: positionals it passes on, the arguments it adds).
SHELL_TOOLS = {
    'tools/dist_train.sh': (('CONFIG', 'GPUS'), 'tools/train.py', (0, ), ('--launcher', 'pytorch')),
    'tools/dist_test.sh': (('CONFIG', 'CHECKPOINT', 'GPUS'), 'tools/test.py', (0, 1),
                           ('--launcher', 'pytorch')),
    'tools/setup_env.sh': ((), None, (), ()),
}
SHELL_LANGS = {'bash', 'shell', 'sh'}
COMMAND_START = re.compile(r'^(?:[A-Z_][A-Z0-9_]*=\S*\s+)*'
                           r'(?:python3?\s|\.venv/bin/python\s|bash\s|make\b|torchrun\s|pip\s|'
                           r'tools/\S+\.sh\s+\S)')
REPO_PATH = re.compile(r'^(?:configs|tools|mmkd_ext|benchmarks|tests|requirements|docs)/\S*$')


# ------------------------------------------------------------------ reading pages
class Block(NamedTuple):
    page: Path
    line: int  # of the first content line, 1-based
    lang: str
    lines: List[str]


def read_page(page: Path):
    """``(blocks, prose)``: the fenced blocks, and the other lines with their line
    numbers (fence lines blanked)."""
    blocks, prose, current = [], [], None
    for number, line in enumerate(page.read_text(encoding='utf-8').splitlines(), 1):
        fence = re.match(r'^\s*```\s*([\w+-]*)\s*$', line)
        if current is None and fence:
            current = Block(page, number + 1, fence.group(1).lower(), [])
        elif current is not None and re.match(r'^\s*```\s*$', line):
            blocks.append(current)
            current = None
        elif current is not None:
            current.lines.append(line)
        else:
            prose.append((number, line))
    assert current is None, f'{page}: a code fence opened at line {current.line - 1} is not closed'
    return blocks, prose


PAGE_CONTENT = {page: read_page(page) for page in PAGES}


def where(page: Path, line: int) -> str:
    return f'{page.relative_to(ROOT)}:{line}'


def inline_spans():
    """``(page, line, text)`` of every inline code span outside fenced blocks."""
    for page, (_, prose) in PAGE_CONTENT.items():
        text = '\n'.join(line for _, line in prose)
        numbers = [number for number, _ in prose]
        for match in re.finditer(r'(?<!`)`([^`]+)`(?!`)', text):
            line = numbers[text.count('\n', 0, match.start())]
            yield page, line, ' '.join(match.group(1).split())


class Command(NamedTuple):
    where: str
    text: str


def shell_commands() -> List[Command]:
    found = []
    for page, (blocks, _) in PAGE_CONTENT.items():
        for block in blocks:
            if block.lang not in SHELL_LANGS:
                continue
            pending, start = '', None
            for offset, line in enumerate(block.lines):
                if start is None:
                    start = block.line + offset
                if line.rstrip().endswith('\\'):
                    pending += line.rstrip()[:-1] + ' '
                    continue
                text = (pending + line).strip()
                pending = ''
                if text and not text.startswith('#'):
                    found.append(Command(where(page, start), text))
                start = None
    for page, line, span in inline_spans():
        if COMMAND_START.match(span + ' '):  # (the space ends a lone `make`)
            found.append(Command(where(page, line), span))
    return found


COMMANDS = shell_commands()


# ---------------------------------------------------------------- running tools
class _Parsed(Exception):
    """Raised where a tool has parsed (and checked) its arguments."""

    def __init__(self, parser, namespace):
        super().__init__()
        self.parser, self.namespace = parser, namespace


_TOOL_MODULES: Dict[str, object] = {}


def tool_module(script: str):
    """The tool's module, imported once (not run as ``__main__``)."""
    if script not in _TOOL_MODULES:
        name = '_docs_tool_' + re.sub(r'\W', '_', script)
        spec = importlib.util.spec_from_file_location(name, ROOT / script)
        module = importlib.util.module_from_spec(spec)
        writes_bytecode, sys.dont_write_bytecode = sys.dont_write_bytecode, True
        try:  # no __pycache__ in tools/
            spec.loader.exec_module(module)
        finally:
            sys.dont_write_bytecode = writes_bytecode
        _TOOL_MODULES[script] = module
    return _TOOL_MODULES[script]


def parse_with_tool(script: str, args: List[str], monkeypatch) -> argparse.Namespace:
    """Run ``script``'s ``main()`` with ``args`` up to its argument checks; fail with
    the tool's own error message if it refuses them."""
    module = tool_module(script)
    real_parse = argparse.ArgumentParser.parse_args
    check = getattr(module, 'check_args', None)

    def parse_args(parser, argv=None, namespace=None):
        parsed = real_parse(parser, argv, namespace)
        if check is None:
            raise _Parsed(parser, parsed)
        return parsed

    def check_args(parser, parsed, *rest, **kwargs):
        check(parser, parsed, *rest, **kwargs)
        raise _Parsed(parser, parsed)

    monkeypatch.setattr(argparse.ArgumentParser, 'parse_args', parse_args)
    if check is not None:
        monkeypatch.setattr(module, 'check_args', check_args)
    monkeypatch.setattr(sys, 'argv', [script, *args])
    monkeypatch.chdir(ROOT)
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            module.main()
    except _Parsed as parsed:
        return parsed.namespace
    except SystemExit as stop:
        pytest.fail(f'{script} refuses {args}: exit {stop.code}\n{stderr.getvalue()}')
    finally:
        monkeypatch.undo()
    pytest.fail(f'{script} returned without parsing its arguments')


def expand_synopsis(tokens: List[str]) -> List[str]:
    """A synopsis line's tokens as one concrete command line."""
    out = []
    for token in tokens:
        token = token.strip('[]')
        if token in ('', '...'):
            continue
        if '|' in token and '=' not in token:
            token = token.split('|')[0]
        out.append(PLACEHOLDERS.get(token, token))
    return out


def check_config_paths(tokens: List[str], context: str) -> None:
    for token in tokens:
        for value in (token, token.partition('=')[2]):
            if value.startswith('configs/') and value.endswith('.py'):
                assert (ROOT / value).is_file(), f'{context}: no config {value}'


def check_python_tool(script: str, args: List[str], context: str, monkeypatch) -> None:
    assert (ROOT / script).is_file(), f'{context}: no tool {script}'
    check_config_paths(args, context)
    parsed = parse_with_tool(script, args, monkeypatch)
    if script == 'tools/demo.py' and parsed.methods:
        from benchmarks.tasks import make_tasks
        known = {run.method for run in make_tasks(str(ROOT))[parsed.task].runs if run.method}
        assert set(parsed.methods) <= known, f'{context}: demo methods {parsed.methods}'


def check_shell_tool(script: str, args: List[str], context: str, monkeypatch) -> None:
    assert (ROOT / script).is_file(), f'{context}: no tool {script}'
    assert script in SHELL_TOOLS, f'{context}: no checker for {script}; add it to SHELL_TOOLS'
    positionals, python_tool, passed, added = SHELL_TOOLS[script]
    assert len(args) >= len(positionals), f'{context}: {script} takes {positionals}'
    values, rest = args[:len(positionals)], args[len(positionals):]
    for name, value in zip(positionals, values):
        if name == 'GPUS':
            assert value.isdigit(), f'{context}: GPUS must be a number, got {value!r}'
    if python_tool is None:
        assert not rest, f'{context}: {script} takes no arguments'
        return
    check_python_tool(python_tool, [values[i] for i in passed] + rest + list(added),
                      context, monkeypatch)


def makefile_targets() -> set:
    text = (ROOT / 'Makefile').read_text()
    return {m.group(1) for m in re.finditer(r'^([A-Za-z0-9_-]+)\s*:(?!=)', text, re.M)}


def constraints() -> Dict[str, str]:
    pins = {}
    for line in (ROOT / 'requirements' / 'constraints.txt').read_text().splitlines():
        match = re.match(r'^([A-Za-z0-9_.-]+)==(\S+)', line.strip())
        if match:
            pins[match.group(1).lower()] = match.group(2)
    return pins


@pytest.mark.parametrize('command', COMMANDS, ids=[c.where for c in COMMANDS])
def test_command_is_real(command: Command, monkeypatch):
    context = f'{command.where}: {command.text}'
    tokens = shlex.split(command.text, comments=True)
    while tokens and re.match(r'^[A-Z_][A-Z0-9_]*=', tokens[0]):
        tokens.pop(0)  # environment assignments
    tokens = expand_synopsis(tokens)
    assert tokens, context
    head = tokens[0]
    if head == 'make':
        unknown = [t for t in tokens[1:] if '=' not in t and not t.startswith('-')
                   and t not in makefile_targets()]
        assert not unknown, f'{context}: no make target {unknown}'
    elif head in ('python', 'python3', '.venv/bin/python'):
        assert len(tokens) > 1, context
        if tokens[1] == '-m':
            module = tokens[2]
            assert module in ('pytest', 'venv'), f'{context}: no checker for -m {module}'
            for path in tokens[3:]:
                if path.startswith('tests/'):
                    assert (ROOT / path.split('::')[0]).exists(), f'{context}: no {path}'
        else:
            assert tokens[1].startswith('tools/'), f'{context}: not a tool of tools/'
            check_python_tool(tokens[1], tokens[2:], context, monkeypatch)
    elif head == 'bash' or head.endswith('.sh'):
        script = tokens[1] if head == 'bash' else head
        rest = tokens[2:] if head == 'bash' else tokens[1:]
        check_shell_tool(script, rest, context, monkeypatch)
    elif head == 'torchrun':
        scripts = [i for i, t in enumerate(tokens) if t.startswith('tools/') and t.endswith('.py')]
        assert scripts, f'{context}: no tools/*.py in the torchrun command'
        check_python_tool(tokens[scripts[0]], tokens[scripts[0] + 1:], context, monkeypatch)
    elif head == 'pip':
        assert tokens[1:2] == ['install'], f'{context}: only pip install is documented'
        if tokens[2:] == ['-e', '.']:
            assert (ROOT / 'setup.py').is_file()
        pins = constraints()
        for token in tokens[2:]:
            name, sep, version = token.partition('==')
            if sep:
                assert pins.get(name.lower()) == version, \
                    f'{context}: {token} differs from requirements/constraints.txt'
    else:
        pytest.fail(f'{context}: no checker for this kind of command')


def test_every_tool_and_make_target_is_documented():
    """The other way round: each tool and make target appears in some command."""
    text = '\n'.join(c.text for c in COMMANDS)
    tools = glob.glob(str(ROOT / 'tools' / '*.py')) + glob.glob(str(ROOT / 'tools' / '*.sh'))
    for tool in sorted(tools):
        name = 'tools/' + os.path.basename(tool)
        assert name in text, f'{name} appears in no documented command'
    for target in makefile_targets():
        assert re.search(rf'\bmake {target}\b', text), f'make {target} appears in no command'


# -------------------------------------------------------------------- links
def github_slug(heading: str) -> str:
    text = re.sub(r'[^\w\- ]', '', heading.strip().lower())
    return text.replace(' ', '-')


def anchors(page: Path) -> set:
    seen = defaultdict(int)
    found = set()
    for _, line in PAGE_CONTENT[page][1]:
        match = re.match(r'^#{1,6}\s+(.*?)\s*#*\s*$', line)
        if not match:
            continue
        slug = github_slug(match.group(1))
        found.add(slug if not seen[slug] else f'{slug}-{seen[slug]}')
        seen[slug] += 1
    return found


def links():
    for page, (_, prose) in PAGE_CONTENT.items():
        for number, line in prose:
            for match in re.finditer(r'\]\(([^)\s]+)\)', line):
                yield page, number, match.group(1)


def test_relative_links_point_at_files_and_headings():
    broken = []
    for page, number, target in links():
        if re.match(r'^[a-z]+:', target):
            continue  # http(s):, mailto:
        path, _, anchor = target.partition('#')
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f'{where(page, number)}: {target} (no such file)')
        elif anchor and file.suffix == '.md' and anchor not in anchors(file):
            broken.append(f'{where(page, number)}: {target} (no heading #{anchor})')
    assert not broken, '\n'.join(broken)


def test_every_docs_page_is_listed_in_the_index():
    index = ROOT / 'docs' / 'en' / 'index.md'
    listed = {(index.parent / path).resolve() for page, _, target in links()
              if page == index for path in [target.partition('#')[0]] if path}
    for page in PAGES:
        if (ROOT / 'docs') in page.parents and page != index:
            assert page.resolve() in listed, f'{page.relative_to(ROOT)} is not in docs/en/index.md'


# ------------------------------------------------------- paths and names in prose
def expand_braces(pattern: str) -> List[str]:
    match = re.search(r'\{([^{}]*,[^{}]*)\}', pattern)
    if not match:
        return [pattern]
    return [p for choice in match.group(1).split(',')
            for p in expand_braces(pattern[:match.start()] + choice + pattern[match.end():])]


def test_repository_paths_in_code_spans_exist():
    missing = []
    for page, line, span in inline_spans():
        if not REPO_PATH.match(span):
            continue
        for pattern in expand_braces(re.sub(r'<[^>]*>', '*', span)):
            if not glob.glob(str(ROOT / pattern)):
                missing.append(f'{where(page, line)}: {span}')
    assert not missing, '\n'.join(missing)


def mmkd_ext_classes() -> set:
    names = set()
    for path in (ROOT / 'mmkd_ext').rglob('*.py'):
        tree = ast.parse(path.read_text(encoding='utf-8'))
        names.update(node.name for node in ast.walk(tree) if isinstance(node, ast.ClassDef))
    return names


def test_class_names_in_code_spans_are_mmkd_ext_classes():
    known = mmkd_ext_classes() | LIBRARY_CLASSES
    unknown = []
    for page, line, span in inline_spans():
        for match in re.finditer(r'(?<![\w.])(?:mmkd_ext\.)?([A-Z][A-Za-z0-9]+)\b', span):
            name = match.group(1)
            if name.endswith(CLASS_SUFFIXES) and name not in known:
                unknown.append(f'{where(page, line)}: {name}')
        dotted = re.fullmatch(r'mmkd_ext(?:\.[a-z_]+)+', span)
        if dotted:
            module = ROOT / Path(*span.split('.'))
            if not (module.with_suffix('.py').is_file() or (module / '__init__.py').is_file()):
                unknown.append(f'{where(page, line)}: module {span}')
    assert not unknown, '\n'.join(unknown)


# ------------------------------------------------------------ Python snippets
def python_blocks() -> List[Block]:
    return [b for blocks, _ in PAGE_CONTENT.values() for b in blocks if b.lang == 'python']


def registered(type_name: str):
    """The class of a config ``type``: mmkd_ext's registries first, then MMEngine's
    (which the libraries register into); None if unknown."""
    import mmkd_ext  # noqa: F401
    from mmengine import registry as root
    from mmkd_ext.registry import HOOKS, MODELS, TASK_VIEWS
    for registry in (MODELS, HOOKS, TASK_VIEWS):
        cls = registry.get(type_name)
        if cls is not None:
            return cls
    if type_name.startswith('mmkd_ext.'):
        return None
    for name in ('MODELS', 'HOOKS', 'OPTIMIZERS', 'OPTIM_WRAPPERS', 'DATASETS'):
        cls = getattr(root, name).get(type_name)
        if cls is not None:
            return cls
    return None


def test_python_snippets_name_registered_types_with_their_arguments():
    problems = []
    for block in python_blocks():
        context = where(block.page, block.line)
        try:
            tree = ast.parse('\n'.join(block.lines))
        except SyntaxError as error:
            problems.append(f'{context}: does not parse ({error})')
            continue
        # The distiller pops alpha (`weight`) from the logit KD loss's dict.
        popped = {id(k.value): {'weight'} for n in ast.walk(tree) if isinstance(n, ast.Call)
                  for k in n.keywords if k.arg == 'logit_kd'}
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and getattr(node.func, 'id', None) == 'dict'):
                continue
            keywords = {k.arg: k.value for k in node.keywords if k.arg}
            type_node = keywords.get('type')
            if not (isinstance(type_node, ast.Constant) and isinstance(type_node.value, str)):
                continue
            cls = registered(type_node.value)
            if cls is None:
                problems.append(f'{context}: type {type_node.value!r} is not registered')
                continue
            if cls.__module__.split('.')[0] != 'mmkd_ext':
                continue  # a library's type: its arguments are the library's business
            init = next(vars(c)['__init__'] for c in cls.__mro__ if '__init__' in vars(c))
            if init in (torch.nn.Module.__init__, object.__init__):
                params = {}  # a class without arguments of its own
            else:
                params = inspect.signature(init).parameters
            if any(p.kind is p.VAR_KEYWORD for p in params.values()):
                continue
            extra = set(keywords) - set(params) - {'type', '_scope_'} - popped.get(id(node), set())
            if extra:
                problems.append(f'{context}: {type_node.value} takes no {sorted(extra)}')
    assert not problems, '\n'.join(problems)


# ----------------------------------------------------------------- repetition
def test_no_block_stands_in_two_places():
    seen: Dict[str, str] = {}
    repeated = []

    def record(lines: List[str], place: str) -> None:
        body = '\n'.join(line.strip() for line in lines if line.strip())
        if body.count('\n') < 2:
            return
        if body in seen:
            repeated.append(f'{place} repeats {seen[body]}')
        seen.setdefault(body, place)

    for page, (blocks, prose) in PAGE_CONTENT.items():
        for block in blocks:
            record(block.lines, where(page, block.line))
        table: List[str] = []
        start: Optional[int] = None
        for number, line in prose + [(0, '')]:
            if line.startswith('|'):
                start = number if not table else start
                table.append(line)
                continue
            if table:
                record(table, where(page, start))
            table = []
    assert not repeated, '\n'.join(repeated)


def test_readme_family_table_is_the_matrix_table():
    """The README's families x weightings table is what the family matrix asserts
    (tests/test_engine/test_family_matrix.py runs every cell)."""
    from benchmarks.families import markdown_table
    assert markdown_table() in (ROOT / 'README.md').read_text(), (
        'README.md: the family table differs from benchmarks.families.markdown_table(); '
        'paste its output.')
