"""Two gloo processes on CPU, launched by torchrun from the test, against one plain process: batch norm over the global
batch, the same training trajectory, only rank 0 writing, a run killed mid-epoch that resumes to the same end; the whole
pipeline under torchrun, its sharded evaluation and energy the same as one process's; bad launches in one line."""
import json, os, shutil, signal, subprocess, sys, time
from pathlib import Path

import pytest
import torch

JOBS = Path(__file__).resolve().parent/'distjobs.py'


def launch(job:str, out:Path, nproc:int, env=None, wait=True):
    "Run `job` of tests/distjobs.py on `nproc` processes (torchrun) or, for 0, as one plain process."
    out.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, str(JOBS), job, str(out)] if nproc == 0 else \
          [sys.executable, '-m', 'torch.distributed.run', '--standalone', f'--nproc-per-node={nproc}', str(JOBS), job, str(out)]
    env = dict(os.environ, OMP_NUM_THREADS='1', RSNN_PROGRESS='0', **(env or {}))
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    if not wait: return p
    log, _ = p.communicate(timeout=600)
    assert p.returncode == 0, log[-3000:]
    return torch.load(out/f'{job}.pt')


@pytest.fixture(scope='module')
def fits(tmp_path_factory):
    "The tiny training job (and the batch norm job) as one plain process and on two processes."
    root = tmp_path_factory.mktemp('fit')
    return root, launch('fit', root/'one', 0), launch('fit', root/'two', 2)


def test_global_batch_norm_matches_one_process(fits):
    _, one, two = fits
    for k in ('y', 'grad', 'mean', 'var'): torch.testing.assert_close(two['bn'][k], one['bn'][k], rtol=1e-5, atol=1e-6)


def test_fit_same_trajectory_only_rank0_writes(fits):
    _, one, two = fits                                       # rank 1 fails its job if it locks or writes
    for k in ('loss', 'acc', 'val'): torch.testing.assert_close(two[k], one[k], rtol=1e-4, atol=1e-5)
    # summing a batch in two halves rounds differently, and the attack's sign() steps amplify it: up to 1.5e-4 after three
    # epochs on one CPU; another batch order moves the same weights by 5e-3 to 4e-2
    for k, w in one['weights'].items(): torch.testing.assert_close(two['weights'][k], w, rtol=1e-3, atol=5e-4, msg=k)


def test_killed_mid_epoch_resumes_to_the_same_end(fits):
    tmp_path, _, whole = fits
    p = launch('fit', tmp_path/'killed', 2, env=dict(RSNN_TEST_SLOW='0.3'), wait=False)
    last = tmp_path/'killed'/'run'/'tiny-last.safetensors'
    t0 = time.time()
    while not last.exists() and p.poll() is None and time.time() - t0 < 300: time.sleep(0.1)
    assert p.poll() is None, 'the run ended before it could be killed'
    time.sleep(0.6)                                                       # inside the second epoch
    os.killpg(p.pid, signal.SIGKILL); p.wait()
    assert not (tmp_path/'killed'/'fit.pt').exists()
    again = launch('fit', tmp_path/'killed', 2)
    for k in ('loss', 'acc', 'val'): torch.testing.assert_close(again[k], whole[k], rtol=1e-6, atol=1e-7)


RSNN = [sys.executable, '-m', 'robustsparsesnn.cli']
TORCHRUN = [sys.executable, '-m', 'torch.distributed.run', '--standalone']
ENV = dict(os.environ, OMP_NUM_THREADS='1', RSNN_PROGRESS='0')


def rsnn(*args, nproc=0):
    "`rsnn ARGS` as one plain process, or under torchrun on `nproc` processes."
    cmd = RSNN if nproc == 0 else TORCHRUN + [f'--nproc-per-node={nproc}', '-m', 'robustsparsesnn.cli']
    return subprocess.run(cmd + [str(a) for a in args], capture_output=True, text=True, env=ENV, timeout=600)


def without_times(v):
    "A results structure without its wall-clock fields."
    if isinstance(v, dict): return {k: without_times(x) for k, x in v.items() if k not in ('seconds', 'finished', 'wall_clock_s')}
    if isinstance(v, list): return [without_times(x) for x in v]
    return v


@pytest.fixture(scope='module')
def tiny_run(tmp_path_factory):
    "The tiny preset with evaluation batches of 4 (16 test images: 4 batches to share), run by one process and by two."
    import tomli_w
    from robustsparsesnn.config import config_to_dict, preset_config
    d = config_to_dict(preset_config('tiny')); d['evaluate']['batch_size'] = 4
    root = tmp_path_factory.mktemp('pipeline')
    (root/'tiny.toml').write_text(tomli_w.dumps(d))
    for d, nproc in (('one', 0), ('two', 2)):
        r = rsnn('run', root/'tiny.toml', '--run-dir', root/d, nproc=nproc)
        assert r.returncode == 0, r.stderr[-3000:]
        assert r.stdout.count('report: ') == 1                           # rank 0 alone prints
    return root


def test_pipeline_on_two_processes(tiny_run):
    one, two = (json.loads((tiny_run/d/'stages.json').read_text()) for d in ('one', 'two'))
    assert list(two) == list(one)
    from safetensors.torch import load_file
    a, b = load_file(str(tiny_run/'one'/'ann.safetensors')), load_file(str(tiny_run/'two'/'ann.safetensors'))
    for k in a: torch.testing.assert_close(b[k], a[k], rtol=1e-4, atol=1e-5, msg=k)


def test_sharded_evaluation_and_energy_are_identical(tiny_run):
    "The evaluation and energy the two processes wrote, made again by one process from the same SNNs: the same files."
    shutil.copytree(tiny_run/'two', tiny_run/'again')
    for stage, f in (('evaluate', 'evaluation.json'), ('energy', 'energy.json')):
        r = rsnn(stage, tiny_run/'tiny.toml', '--run-dir', tiny_run/'again')
        assert r.returncode == 0, r.stderr[-3000:]
        two, again = (json.loads((tiny_run/d/f).read_text()) for d in ('two', 'again'))
        assert without_times(again) == without_times(two), stage


def test_bad_launches_say_one_line(tmp_path, monkeypatch, capsys):
    from robustsparsesnn import cli, stages
    monkeypatch.setattr(cli, 'init_from_env', lambda *a: None)                     # as if torchrun had started 3 ranks
    for m in (cli, stages): monkeypatch.setattr(m, 'world', lambda: (0, 3))
    assert cli.main(['run', 'tiny', '--run-dir', str(tmp_path/'x')]) == 2           # the tiny preset's batch is 64
    assert cli.main(['reproduce', 'fashion-mnist', '--quick', '--root', str(tmp_path/'z')]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == ['rsnn: error: [data] batch_size 64 does not split over 3 ranks; use a multiple of 3',
                   'rsnn: error: rsnn reproduce runs on one process; under torchrun launch `run` or a stage (convert, energy, '
                   'evaluate, pretrain, prune, report, snn-finetune)'] and not (tmp_path/'x').exists()
    env = {k: v for k, v in ENV.items() if k not in ('MASTER_ADDR', 'MASTER_PORT')}
    r = subprocess.run(RSNN + ['run', 'tiny', '--run-dir', str(tmp_path/'y')], capture_output=True, text=True, timeout=600,
                       env=dict(env, WORLD_SIZE='2', RANK='0', LOCAL_RANK='0'))
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        'rsnn: error: WORLD_SIZE=2 but MASTER_ADDR, MASTER_PORT not set: launch with `torchrun --nproc-per-node N -m '
        'robustsparsesnn.cli ...`, which sets them']
    p = launch('invisible', tmp_path/'inv', 2, wait=False)                          # two real processes, two folders
    log, _ = p.communicate(timeout=600)
    assert p.returncode != 0 and 'rank 1 cannot see the run directory runs/tiny that rank 0 made' in log
