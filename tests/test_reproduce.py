"""`rsnn reproduce cifar10-jpeg --quick` end to end through the command line (the Fashion-MNIST one runs in notebook 14): every
recipe's results file, of the same schema as the committed results of the full reproductions."""
import os, subprocess, sys
from pathlib import Path

from robustsparsesnn.core import git_commit
from robustsparsesnn.recipes import RECIPES, load_results

ROOT = Path(__file__).resolve().parent.parent
RSNN = [sys.executable, '-c', 'import sys; from robustsparsesnn.cli import main; sys.exit(main())']


def schema(doc:dict) -> dict:
    "The keys of a results file, and of a representative element of each of its lists and maps."
    def keys(v):
        if isinstance(v, list): v = v[0] if v else {}
        if isinstance(v, dict) and v and not all(k.isidentifier() for k in v): v = next(iter(v.values()))   # a map: one value
        return sorted(v) if isinstance(v, dict) else type(v).__name__ if not isinstance(v, (int, float)) else 'number'
    return {k: keys(v) for k, v in doc.items()}


def test_schema_sees_keys_not_values():
    a = dict(n=1, cells=[dict(acc=0.5, n=10)], members={'pwl:1': dict(acc=0.1)}, claims=[])
    b = dict(n=2.5, cells=[dict(acc=0.7, n=20), dict(acc=0.1, n=20)], members={'rect:2': dict(acc=0.3)}, claims=[])
    assert schema(a) == schema(b)
    assert schema(a) != schema(dict(a, cells=[dict(acc=0.5)]))


def test_cifar_quick_reproduction(tmp_path):
    env = dict(os.environ, RSNN_PROGRESS='0', OMP_NUM_THREADS=os.environ.get('OMP_NUM_THREADS', '1'))
    r = subprocess.run(RSNN + ['reproduce', 'cifar10-jpeg', '--quick', '--root', str(tmp_path)], capture_output=True, text=True,
                       env=env, timeout=1200)
    assert r.returncode == 0, r.stderr[-3000:]
    got = load_results(tmp_path/'results')
    assert list(got) == list(RECIPES)
    for doc in got.values():
        assert doc['command'] == 'rsnn reproduce cifar10-jpeg --quick' and doc['quick'] is True
        assert doc['runs_made_at'] == [git_commit()]     # every run of this reproduction made at the checked-out commit
        assert all(c['verdict'] in ('holds', 'fails', 'not resolved at this n') for c in doc['claims'])
    for dataset in ('fashion-mnist', 'cifar10-jpeg'):     # the full reproductions' committed files, where they exist
        for name, doc in load_results(ROOT/'results'/dataset).items():
            assert schema(doc) == schema(got[name]), (dataset, name)
