"""Nothing lost: the tiny run killed with SIGKILL inside or at the end of every stage (`make test-slow`: at every stage
boundary and inside every stage), then resumed; run stage
by stage; and raced by a second process on its directory. Every way ends with the metrics and model checkpoints of
one uninterrupted `rsnn run`, bit for bit. The kills land at the package's crash points (`core.crash_point`): every
atomic write (`write F` before its rename, `wrote F` after) and the start and end of every stage."""
import json, os, re, subprocess, sys, time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import tomli_w

from safetensors.torch import load_file

from robustsparsesnn.core import TMP_PATTERN, tensors_digest
from robustsparsesnn.config import config_to_dict, preset_config
from robustsparsesnn.stages import STAGES

RSNN = [sys.executable, '-c', 'import sys; from robustsparsesnn.cli import main; sys.exit(main())']
ENV = {**os.environ, 'RSNN_PROGRESS': '0', 'OMP_NUM_THREADS': '1'}
for k in ('RSNN_CRASH_AT', 'RSNN_CRASH_LOG'): ENV.pop(k, None)
CHECKPOINTS = ('sparse_ann.safetensors', 'snn.safetensors', 'dense_snn.safetensors', 'snn_converted.safetensors')


def rsnn(*args, **env):
    return subprocess.run(RSNN + [str(a) for a in args], capture_output=True, text=True, env={**ENV, **env}, timeout=600)


def outcome(run:Path) -> dict:
    """What must not depend on how the run got there: its metrics (but the wall-clock time) and its model checkpoints'
    tensors (their SHA-256 over names, dtypes, shapes and bytes; the files' own bytes differ from process to process,
    since safetensors writes its metadata in hash-map order)."""
    m = json.loads((run/'metrics.json').read_text()); m.pop('wall_clock_s')
    return dict(metrics=m, checkpoints={f: tensors_digest(load_file(str(run/f))) for f in CHECKPOINTS})


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    "The tiny preset with two epochs in the stages that train, so that kills land between epochs too; and its whole run."
    d = config_to_dict(preset_config('tiny'))
    d['pretrain']['epochs'] = 2; d['snn_finetune']['epochs'] = 2
    root = tmp_path_factory.mktemp('resume')
    (root/'tiny.toml').write_text(tomli_w.dumps(d))
    r = rsnn('run', root/'tiny.toml', '--run-dir', root/'whole', RSNN_CRASH_LOG=str(root/'points.log'))
    assert r.returncode == 0, r.stderr[-2000:]
    return root, (root/'points.log').read_text().splitlines(), outcome(root/'whole')


def kill_points(points:list) -> list:
    "Every stage boundary, and one moment inside every stage (the middle write of the stage, before its rename)."
    chosen = []
    for s in STAGES:
        i, j = points.index(f'stage {s} start#1'), points.index(f'stage {s} done#1')
        inside = [p for p in points[i + 1:j] if p.startswith('write ')]
        assert inside, f'stage {s} wrote nothing'
        chosen.append(inside[len(inside) // 2])
        if s != 'report': chosen.append(f'stage {s} done#1')
    return chosen


def test_points_cover_every_stage(tiny):
    root, points, _ = tiny
    chosen = kill_points(points)
    assert len(chosen) == 2 * len(STAGES) - 1 and len(set(chosen)) == len(chosen)
    assert any(p.startswith('write snn-last.safetensors') for p in points)   # an epoch checkpoint inside SNN finetuning


def _kill_and_resume(root:Path, point:str) -> tuple:
    run = root/('killed-' + re.sub(r'[^A-Za-z0-9]+', '-', point))
    r = rsnn('run', root/'tiny.toml', '--run-dir', run, RSNN_CRASH_AT=point)
    killed = r.returncode
    r = rsnn('run', root/'tiny.toml', '--run-dir', run)
    assert r.returncode == 0, f'{point}: {r.stderr[-2000:]}'
    leftovers = [p.name for p in run.rglob('*') if TMP_PATTERN.match(p.name)]
    return point, killed, outcome(run), leftovers


def _check_kills(root, whole, chosen):
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda p: _kill_and_resume(root, p), chosen))
    for point, killed, got, leftovers in results:
        assert killed == -9, f'{point}: the run was not killed there (exit {killed})'
        assert got == whole, f'killed at {point!r}: the resumed run differs'
        assert leftovers == [], f'{point}: temporary files left behind: {leftovers}'


def test_kill_in_or_after_every_stage_then_resume(tiny):
    "One kill per stage, inside it or at its end by turns (the slow test below kills at all of them)."
    root, points, whole = tiny
    chosen = kill_points(points)
    _check_kills(root, whole, [chosen[min(2 * i + i % 2, len(chosen) - 1)] for i in range(len(STAGES))])


@pytest.mark.slow
def test_kill_anywhere_then_resume(tiny):
    root, points, whole = tiny
    _check_kills(root, whole, kill_points(points))


def test_stage_by_stage(tiny):
    root, _, whole = tiny
    run = root/'by-stage'
    for s in STAGES[:-1]:
        r = rsnn(s.replace('_', '-'), root/'tiny.toml', '--run-dir', run)
        assert r.returncode == 0, f'{s}: {r.stderr[-2000:]}'
    assert rsnn('report', run).returncode == 0
    assert outcome(run) == whole


def test_two_processes_on_one_directory(tiny):
    root, _, whole = tiny
    run = root/'raced'
    first = subprocess.Popen(RSNN + ['run', str(root/'tiny.toml'), '--run-dir', str(run)],
                             env={**ENV, 'RSNN_CRASH_LOG': str(root/'raced.log')},
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not ((root/'raced.log').exists() and 'stage pretrain start' in (root/'raced.log').read_text()) and time.time() < deadline:
        time.sleep(0.05)
    second = rsnn('run', root/'tiny.toml', '--run-dir', run)
    out, err = first.communicate(timeout=600)
    assert first.returncode == 0, err[-2000:]
    assert second.returncode == 2 and len(second.stderr.strip().splitlines()) == 1, second.stderr
    assert 'is in use by another process (pid' in second.stderr, second.stderr
    assert outcome(run) == whole
    assert set(json.loads((run/'stages.json').read_text())) == set(STAGES)


def test_damaged_checkpoint_is_recomputed_never_used(tiny):
    root, _, whole = tiny
    run = root/'damaged'
    assert rsnn('run', root/'tiny.toml', '--run-dir', run, RSNN_CRASH_AT='stage evaluate done#1').returncode == -9
    f = run/'sparse_ann.safetensors'
    raw = bytearray(f.read_bytes()); raw[-3] ^= 0x10; f.write_bytes(bytes(raw))
    r = rsnn('report', run)
    assert r.returncode == 2 and 'has not finished stage energy' in r.stderr, r.stderr
    r = rsnn('run', root/'tiny.toml', '--run-dir', run)
    assert r.returncode == 0, r.stderr[-2000:]
    assert ('stage prune: sparse_ann.safetensors has changed since it was written (SHA-256 differs); '
            'running prune, convert, snn_finetune, evaluate again') in r.stdout
    assert outcome(run) == whole
    (run/'snn.safetensors').write_bytes((run/'snn.safetensors').read_bytes()[:-100])
    r = rsnn('report', run)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert 'stage snn_finetune: snn.safetensors has' in r.stderr and 'bytes' in r.stderr, r.stderr


def test_resumed_stage_counts_its_earlier_epochs(tiny):
    "A stage killed after its first epoch and resumed records the time of both calls: the resumed call's and the checkpointed epoch's."
    run = tiny[0]/'timed'
    assert rsnn('pretrain', tiny[0]/'tiny.toml', '--run-dir', run, RSNN_CRASH_AT='wrote ann-history.json#1').returncode == -9
    first = json.loads((run/'ann-history.json').read_text())
    assert len(first) == 1 and not (run/'stages.json').exists()
    assert rsnn('pretrain', tiny[0]/'tiny.toml', '--run-dir', run).returncode == 0
    record, history = json.loads((run/'stages.json').read_text())['pretrain'], json.loads((run/'ann-history.json').read_text())
    assert record['resumed_after_seconds'] == round(first[0]['seconds'], 1)
    assert record['seconds'] >= sum(r['seconds'] for r in history) - 0.1
