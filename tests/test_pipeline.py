"""The `rsnn` command end to end: the tiny pipeline, and bad input (one line, exit 2, nothing written); kills and resumes
are in test_resume.py."""
import json, os, subprocess, sys

import pytest
import tomli_w
from hypothesis import given, settings, strategies as st

from robustsparsesnn.config import config_to_dict, preset_config

RSNN = [sys.executable, '-c', 'import sys; from robustsparsesnn.cli import main; sys.exit(main())']
ENV = {**os.environ, 'RSNN_PROGRESS': '0', 'OMP_NUM_THREADS': '1'}


def rsnn(*args, **kw):
    return subprocess.run(RSNN + [str(a) for a in args], capture_output=True, text=True, env=ENV, timeout=600, **kw)


def test_bad_config_exit_2_nothing_written(tmp_path):
    "The command itself, in its own process (the table of cases below calls its `main` in this process)."
    toml, message = '[prune]\nsparsity = 1.5\n', '[prune] sparsity must be in [0, 1), got 1.5'
    (tmp_path / 'c.toml').write_text(toml)
    r = rsnn('run', tmp_path / 'c.toml', '--run-dir', tmp_path / 'run')
    assert r.returncode == 2 and r.stderr.startswith('rsnn: error: ') and message in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / 'run').exists()


def test_missing_config_and_foreign_run_dir(tmp_path):
    r = rsnn('run', tmp_path / 'nope.toml')
    assert r.returncode == 2 and 'nope.toml' in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert rsnn('run', 'tiny', '--run-dir', tmp_path / 'run').returncode == 0
    listing = sorted(p.name for p in (tmp_path / 'run').iterdir())
    other = {**config_to_dict(preset_config('tiny')), 'prune': {'method': 'lwm', 'sparsity': 0.9}}
    (tmp_path / 'other.toml').write_text(tomli_w.dumps(other))
    r = rsnn('run', tmp_path / 'other.toml', '--run-dir', tmp_path / 'run')
    assert r.returncode == 2 and 'another configuration' in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in (tmp_path / 'run').iterdir()) == listing


def test_help_on_every_command(capsys):
    from robustsparsesnn.cli import main
    for cmd in ([], ['run'], ['pretrain'], ['prune'], ['convert'], ['snn-finetune'], ['evaluate'], ['energy'],
                ['sweep'], ['report'], ['config']):
        with pytest.raises(SystemExit) as e: main(cmd + ['--help'])
        assert e.value.code == 0 and 'usage: rsnn' in capsys.readouterr().out


# ---- bad input, as a hostile user would give it: every case is one line on stderr and exit status 2, and a bad
# configuration writes nothing. In-process calls of `main` (the same top-level rule as the command, without the
# start-up time of a process per case).

def _tiny(**sections):
    "The tiny configuration as a dict, with `sections` merged into it (None deletes a key)."
    d = config_to_dict(preset_config('tiny'))
    for sec, kv in sections.items():
        if not isinstance(kv, dict): d[sec] = kv; continue
        for k, v in kv.items():
            if v is None: d[sec].pop(k, None)
            else: d[sec][k] = v
    return d

BAD_CONFIGS = [   # (the TOML text or a config dict, what the one line must say)
    ('[data]\nbatchsize = 4\n', 'unknown key [data] batchsize'),
    ('[pruning]\nmethod = "lwm"\n', 'unknown section [pruning]'),
    ('[model\n', 'is not valid TOML'),
    ('[prune]\nsparsity = 1.5\n', '[prune] sparsity must be in [0, 1), got 1.5'),
    ('[pretrain]\neps = "abc"\n', '[pretrain] eps must be a number or a fraction like "8/255"'),
    ('[pretrain]\neps = nan\n', '[pretrain] eps must be in [0, 1], got nan'),
    ('[model]\nwidth = inf\n', '[model] width must be finite and in (0, inf), got inf'),
    ('[pretrain]\nlr = inf\n', '[pretrain] lr must be finite'),
    ('[model]\narch = "resnet"\n', "[model] unknown arch 'resnet'"),
    ('[data]\nname = "mnist"\n', "[data] unknown data set 'mnist'"),
    ('[data]\nn_train = 0\n', '[data] n_train must be an integer in 1..inf, got 0'),
    ('[data]\nbatch_size = 0\n', '[data] batch_size must be an integer in 1..inf, got 0'),
    ('[data]\nn_test = true\n', '[data] n_test must be an integer, got True'),
    ('[data]\nseed = -1\n', '[data] seed must be an integer in 0..4294967295, got -1'),
    ('[run]\nseed = 18446744073709551616\n', '[run] seed must be an integer in 0..4294967295'),
    ('[run]\nname = "../../elsewhere"\n', '[run] name must be one folder name'),
    ('[run]\ndevice = "tpu:x"\n', "[run] device must be 'auto', 'cpu', 'cuda', 'cuda:N' or another torch device, got 'tpu:x'"),
    ('[pretrain]\neval_steps = -1\n', '[pretrain] eval_steps'),
    ('[pretrain]\nattack_steps = 2.5\n', '[pretrain] attack_steps must be an integer, got 2.5'),
    ('[snn_finetune]\neval_n = 0\n', '[snn_finetune] eval_n'),
    ('[convert]\nT = 0\n', '[convert] T must be an integer in 1..inf, got 0'),
    ('[convert]\nn_batches = 2.5\n', '[convert] n_batches must be an integer, got 2.5'),
    ('[convert]\nrho = 0\n', '[convert] rho must be in (0, 100], got 0'),
    ('[prune]\ngamma = -1\n', '[prune] gamma must be in [0, inf), got -1'),
    ('[prune]\ngrowth = 0.5\n', '[prune] growth must be in [1, inf), got 0.5'),
    ('[prune]\nfloor = 0\n', '[prune] floor must be in (0, 1), got 0'),
    ('[prune]\nfloor = 1\n', '[prune] floor must be in (0, 1), got 1'),
    ('[evaluate]\nattacks = ["pgd_ens", "pgd"]\n', "[evaluate] unknown SNN attack 'pgd'"),
    ('[evaluate]\nattacks = ["pgd_ens", "pgdd"]\n', "[evaluate] unknown"),
    ('[evaluate]\nsquare_queries = [0]\n', '[evaluate] square_queries must be an integer in 1..inf, got 0'),
    ('[evaluate]\nsquare_queries = [2.5]\n', '[evaluate] square_queries must be an integer in 1..inf, got 2.5'),
    ('[evaluate]\npgd_steps = 0\n', '[evaluate] pgd_steps must be an integer in 1..inf, got 0'),
    ('[evaluate]\neps = []\n', '[evaluate] eps must list at least one budget'),
    ('[evaluate]\nmetric_eps = 0.5\n', '[evaluate] metric_eps 0.5 must be one of eps'),
    ('[energy]\nn = -5\n', '[energy] n must be an integer in 1..inf, got -5'),
    ('[evaluate]\nn = 100\nn_clean = 50\n', '[evaluate] n_clean must be at least n = 100 (the attacked samples are the first n of them), '
                                            'got 50'),
    ('[data]\nn_train_snn = -3\n', '[data] n_train_snn must be an integer in 1..inf, got -3'),
    (_tiny(run={'device': 'cuda:7'}), "[run] device 'cuda:7' does not exist"),
    (_tiny(data={'name': 'fashion-mnist', 'root': '/nonexistent/data'}), "[data] data folder '/nonexistent/data' (root=) does not exist"),
    (_tiny(data={'n_train': 10**9}), '[data] n_train=1000000000 is not possible'),
    (_tiny(evaluate={'n': 64}), '[evaluate] n = 64 asks for more test images than [data] n_test = 32'),
    (_tiny(energy={'n': 64}), '[energy] n = 64 asks for more test images than [data] n_test = 32'),
    (_tiny(evaluate={'n_clean': 64}), '[evaluate] n_clean = 64 asks for more test images than [data] n_test = 32'),
    (_tiny(convert={'n_batches': 9, 'batch_size': 16}), '[convert] n_batches * batch_size = 9 * 16 = 144 calibration images, more than '
                                                        '[data] n_train = 128'),
]


def _main(*args, env=None):
    "Run `rsnn ARGS` in this process: (exit status, stderr)."
    import contextlib, io
    from robustsparsesnn.cli import main
    err, out = io.StringIO(), io.StringIO()
    env = {'RSNN_PROGRESS': '0', **(env or {})}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out): code = main([str(a) for a in args])
    finally:
        for k, v in old.items():
            if v is None: os.environ.pop(k, None)
            else: os.environ[k] = v
    return code, err.getvalue()


def _one_line(code, err, message):
    assert code == 2, (code, err)
    assert err.startswith('rsnn: error: ') and len(err.strip().splitlines()) == 1, err
    assert message in err, err


@pytest.mark.parametrize('config,message', BAD_CONFIGS, ids=[m[:40] for _, m in BAD_CONFIGS])
def test_bad_config_one_line_nothing_written(tmp_path, config, message):
    (tmp_path / 'c.toml').write_text(config if isinstance(config, str) else tomli_w.dumps(config))
    _one_line(*_main('run', tmp_path / 'c.toml', '--run-dir', tmp_path / 'run'), message)
    assert not (tmp_path / 'run').exists()


def test_bad_files_and_folders(tmp_path):
    "Config files and run directories that are not what they should be."
    cases = []
    (tmp_path / 'latin1.toml').write_bytes('[run]\nname = "d\xe9mo"\n'.encode('latin-1'))
    cases.append((('run', tmp_path / 'latin1.toml'), 'latin1.toml is not UTF-8 text'))
    cases.append((('run', tmp_path / 'nope.toml'), "config file"))
    (tmp_path / 'folder.toml').mkdir()
    cases.append((('run', tmp_path / 'folder.toml'), 'folder.toml'))
    (tmp_path / 'a-file').write_text('x')
    cases.append((('run', 'tiny', '--run-dir', tmp_path / 'a-file'), 'is a file, not a folder'))
    cases.append((('report', tmp_path), 'is not a run directory (no config.toml)'))
    cases.append((('convert', 'tiny', '--run-dir', tmp_path / 'fresh'), 'stage convert needs stage prune of the same run first'))
    cases.append((('config', 'nope'), "unknown preset 'nope'"))
    cases.append((('run', 'tiny', '--seed', '-1', '--run-dir', tmp_path / 'neg'),
                  '--seed: seed must be an integer in 0..4294967295, got -1'))
    cases.append((('sweep', 'tiny', '--root', tmp_path / 'sw', '--sparsities', '1.5'), 'sparsity must be in [0, 1), got 1.5'))
    cases.append((('sweep', 'tiny', '--root', tmp_path / 'sw', '--methods', 'snip'), "unknown pruning method 'snip'"))
    for args, message in cases: _one_line(*_main(*args), message)
    assert not (tmp_path / 'sw').exists()


@pytest.fixture(scope='module')
def finished(tmp_path_factory):
    "One finished tiny run, copied by the tests that damage it."
    root = tmp_path_factory.mktemp('finished')
    assert _main('run', 'tiny', '--run-dir', root / 'run')[0] == 0
    return root / 'run'


def _copy(run, tmp_path):
    import shutil
    shutil.copytree(run, tmp_path / 'run', ignore=shutil.ignore_patterns('.lock'))
    return tmp_path / 'run'


def test_damaged_runs_are_named(finished, tmp_path):
    "A report never reads a damaged or unfinished run; each case names the file or the stage."
    run = _copy(finished, tmp_path)
    (run / 'stages.json').write_text((run / 'stages.json').read_text()[:50])
    _one_line(*_main('report', run), 'stages.json is damaged')
    run = _copy(finished, tmp_path / 'b')
    stages = json.loads((run / 'stages.json').read_text()); del stages['energy']
    (run / 'stages.json').write_text(json.dumps(stages))
    _one_line(*_main('report', run), 'has not finished stage energy')
    run = _copy(finished, tmp_path / 'c')
    f = run / 'evaluation.json'; f.write_text(f.read_text().replace('"clean"', '"clear"', 1))
    _one_line(*_main('report', run), 'stage evaluate: evaluation.json has changed since it was written')
    run = _copy(finished, tmp_path / 'd')
    (run / 'energy.json').unlink()
    _one_line(*_main('report', run), 'stage energy: energy.json is missing')
    run = _copy(finished, tmp_path / 'e')   # a checkpoint of another shape, where no record catches it (an older run)
    from robustsparsesnn.core import save_state
    from robustsparsesnn.models import vgg11
    save_state(run / 'sparse_ann.safetensors', {'model': vgg11(num_classes=10, width=0.25).state_dict()})
    stages = json.loads((run / 'stages.json').read_text())
    for s in stages.values(): s.pop('files', None)
    (run / 'stages.json').write_text(json.dumps(stages))
    _one_line(*_main('report', run), 'sparse_ann.safetensors does not hold a vgg11 (width 0.125) of this run')
    (tmp_path / 'other.toml').write_text(tomli_w.dumps(_tiny(prune={'method': 'lwm', 'sparsity': 0.9})))
    _one_line(*_main('run', tmp_path / 'other.toml', '--run-dir', run), 'holds a run of another configuration')


def _tmpfs(path, size):
    path.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(['mount', '-t', 'tmpfs', '-o', f'size={size}', 'tmpfs', str(path)], capture_output=True)
    if r.returncode != 0: pytest.skip(f'cannot mount a tmpfs here ({r.stderr.decode().strip()[:100]})')


def _umount(path): subprocess.run(['umount', str(path)], capture_output=True)


def test_full_disk_then_resume(finished, tmp_path):
    "A disk that fills up mid-run: one line that names the file; the same command resumes once there is room."
    disk = tmp_path / 'disk'
    _tmpfs(disk, '6m')
    try:
        (disk / 'tiny.toml').write_text(tomli_w.dumps(_tiny()))
        _one_line(*_main('run', disk / 'tiny.toml', '--run-dir', disk / 'run'), 'no space left on the device: ')
        done = json.loads((disk / 'run' / 'stages.json').read_text()) if (disk / 'run' / 'stages.json').exists() else {}
        assert 'report' not in done
        subprocess.run(['mount', '-o', 'remount,size=64m', str(disk)], check=True)
        assert _main('run', disk / 'tiny.toml', '--run-dir', disk / 'run')[0] == 0
        m = lambda p: {k: v for k, v in json.loads((p / 'metrics.json').read_text()).items() if k != 'wall_clock_s'}
        assert m(disk / 'run') == m(finished)
    finally: _umount(disk)


def test_read_only_file_system(tmp_path):
    disk = tmp_path / 'ro'
    _tmpfs(disk, '1m')
    try:
        subprocess.run(['mount', '-o', 'remount,ro', str(disk)], check=True)
        _one_line(*_main('run', 'tiny', '--run-dir', disk / 'run'), 'read-only file system: ')
    finally: _umount(disk)


# ---- random configurations either run to the end or stop before any work with one line (hypothesis, derandomised in
# `make test`): the tiny run with up to four keys replaced by values drawn from valid and invalid ones.

POOL = {('pretrain', 'epochs'): [1, 0, -1, 2.5], ('pretrain', 'eval_steps'): [1, -1, 0], ('pretrain', 'lr'): [0.05, float('inf'), 0.0],
        ('convert', 'T'): [1, 3, 0], ('convert', 'n_batches'): [1, 2, 9, 0], ('convert', 'batch_size'): [8, 16, 200],
        ('model', 'width'): [0.125, 0.0625, float('inf'), 0.001], ('prune', 'sparsity'): [0.0, 0.5, 0.9, 1.0, -0.1],
        ('prune', 'method'): ['lwm', 'hydra', 'harp', 'snip'], ('prune', 'floor'): [0.1, 1.0, 0.0],
        ('data', 'n_train'): [64, 128, 10**6, 0], ('data', 'n_test'): [16, 32, 8], ('data', 'batch_size'): [32, 0, 2.5],
        ('evaluate', 'n'): [8, 16, 64, 0], ('evaluate', 'attacks'): [['pgd_ens'], ['pgd_ens', 'rga'], ['pgd_ens', 'pgd'], ['rga']],
        ('evaluate', 'square_queries'): [[], [3], [0]], ('evaluate', 'pgd_steps'): [1, 2, 0],
        ('snn_finetune', 'eval_steps'): [1, -1], ('snn_finetune', 'eval_n'): [8, 0], ('energy', 'n'): [4, 16, 64],
        ('run', 'device'): ['cpu', 'auto', 'cuda:5'], ('run', 'seed'): [0, 7, -1, 2**40]}


@settings(max_examples=12, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(POOL)), st.integers(0, 4), max_size=4))
def test_random_configs_run_or_fail_before_any_work(tmp_path_factory, changes):
    d = _tiny()
    for (sec, key), i in changes.items(): d[sec][key] = POOL[sec, key][i % len(POOL[sec, key])]
    tmp = tmp_path_factory.mktemp('random')
    (tmp / 'c.toml').write_text(tomli_w.dumps(d))
    code, err = _main('run', tmp / 'c.toml', '--run-dir', tmp / 'run')
    assert code in (0, 2), err
    if code == 2:
        assert err.startswith('rsnn: error: ') and len(err.strip().splitlines()) == 1, err
        assert not (tmp / 'run').exists(), f'failed after work had started: {err}'
    else: assert (tmp / 'run' / 'metrics.json').exists()
