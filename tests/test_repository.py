"""What the repository itself must keep: no absolute path to a machine's folder in any tracked file, one preset registry, a
README whose results are those of results/, modules that import only from chapters before theirs and stay short."""
import re, subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# a path rooted in a folder that belongs to one machine (a home, a work or scratch area, a Windows user folder)
MACHINE_PATH = re.compile(r'(?:^|[^\w.~-])(/(?:work|home|Users|root|mnt|tmp|opt|scratch|srv|var|data)/[\w.-]+|[A-Z]:\\(?:Users|work)\\)')


def tracked_files() -> list:
    try: out = subprocess.run(['git', 'ls-files', '-z'], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError): pytest.skip('not a git checkout')
    return [ROOT/f for f in out.split('\0') if f]


def test_no_machine_paths():
    found = []
    for f in tracked_files():
        if not f.is_file() or f.suffix in ('.png', '.jpg', '.gz', '.safetensors'): continue
        try: text = f.read_text(encoding='utf-8')
        except UnicodeDecodeError: continue
        found += [f"{f.relative_to(ROOT)}:{text.count(chr(10), 0, m.start()) + 1}: {m.group(1)}" for m in MACHINE_PATH.finditer(text)]
    assert not found, 'absolute paths to a machine folder:\n' + '\n'.join(found[:20])


def test_the_pattern_finds_machine_paths():
    S = '/'   # built here, so that this file holds no such path itself
    for bad in (f'see {S}work{S}runs', f'"{S}home{S}ada"', 'C:\\' + 'Users\\ada', f'cd {S}tmp{S}x'):
        assert MACHINE_PATH.search(bad), bad
    for fine in ('runs/demo/report.md', '../shared/data', 'a/tmp/b', '/nonexistent/data', 'https://x.org/home/page'):
        assert not MACHINE_PATH.search(fine), fine


def test_one_preset_registry():
    "Named configurations live in one registry (config.PRESETS); no module keeps its own."
    defs = [f"{f.relative_to(ROOT)}" for f in tracked_files() if f.suffix == '.py' and f.parts[-2] == 'robustsparsesnn'
            and re.search(r'^[A-Z_]*PRESETS\s*=', f.read_text(), re.M)]
    assert defs == ['robustsparsesnn/config.py'], defs


def readme_section(markers:tuple) -> str:
    "What README.md shows between `markers` (stripped), failing when they are missing."
    readme, (start, end) = (ROOT/'README.md').read_text(), markers
    assert start in readme and end in readme, f'README.md lacks the markers {markers}: run `make readme`'
    return readme.split(start, 1)[1].split(end, 1)[0].strip()


def test_readme_worst_case_table_comes_from_results():
    "The README's worst-case table is what `readme_budgets` renders from the `rsnn attack-budget` files in results/."
    from robustsparsesnn.recipes import readme_budgets, BUDGET_MARKERS
    assert readme_section(BUDGET_MARKERS) == readme_budgets(ROOT/'results'), 'run `make readme`'


def test_readme_peers_summary_comes_from_results():
    "The README's sentences on SpikingJelly's and snnTorch's networks are what `peers_summary` renders from results/."
    from robustsparsesnn.recipes import PEERS_MARKERS
    from robustsparsesnn.peers import peers_summary
    from robustsparsesnn.core import load_json
    assert readme_section(PEERS_MARKERS) == peers_summary(load_json(ROOT/'results'/'fashion-mnist'/'peers.json')), 'run `make readme`'


def test_readme_results_come_from_results():
    "The README's results (every number of its results table) are what `readme_results` renders from results/ today."
    from robustsparsesnn.recipes import readme_results, README_MARKERS
    shown = readme_section(README_MARKERS)
    expected = readme_results(ROOT/'results').replace('](images/', '](nbs/images/')
    assert shown == expected, 'README.md does not show what results/ holds: run `make readme`'
    for line in shown.splitlines():
        if line.startswith('!['): assert (ROOT/line.split('](', 1)[1].rstrip(')')).is_file(), line


def module_chapters() -> dict:
    "{module: the notebook it is exported from}, read from each module's header."
    out = {}
    for f in sorted((ROOT/'robustsparsesnn').glob('*.py')):
        m = re.search(r'File to edit: \.\./nbs/(\S+)\.ipynb', f.read_text())
        if m: out[f.stem] = m.group(1)
    return out


def test_imports_run_down_the_chapters():
    "A module imports only from modules whose notebooks come before its own (the layout's flow, no cycle)."
    chapters, bad = module_chapters(), []
    assert len(chapters) > 10, chapters
    for mod, nb in chapters.items():
        for dep in re.findall(r'^\s*from \.(\w+) import', (ROOT/'robustsparsesnn'/f'{mod}.py').read_text(), re.M):
            if dep in chapters and not chapters[dep] < nb: bad.append(f'{mod} ({nb}) imports {dep} ({chapters[dep]})')
    assert not bad, bad


def test_modules_stay_short():
    "Every exported module holds one job: under 450 lines."
    long = {m: n for m in module_chapters() if (n := len((ROOT/'robustsparsesnn'/f'{m}.py').read_text().splitlines())) >= 450}
    assert not long, long
