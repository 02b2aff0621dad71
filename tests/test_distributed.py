"""Two gloo processes on CPU, launched by torchrun from the test, against one plain process: batch norm over the global
batch, the same training trajectory, only rank 0 writing, and a run killed mid-epoch that resumes to the same end."""
import os, signal, subprocess, sys, time
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


def test_global_batch_norm_matches_one_process(tmp_path):
    one, two = launch('bn', tmp_path/'one', 0), launch('bn', tmp_path/'two', 2)
    for k in ('y', 'grad', 'mean', 'var'): torch.testing.assert_close(two[k], one[k], rtol=1e-5, atol=1e-6)


def test_fit_same_trajectory_only_rank0_writes(tmp_path):
    one, two = launch('fit', tmp_path/'one', 0), launch('fit', tmp_path/'two', 2)     # rank 1 fails its job if it writes
    for k in ('loss', 'acc', 'val'): torch.testing.assert_close(two[k], one[k], rtol=1e-4, atol=1e-5)
    for k, w in one['weights'].items(): torch.testing.assert_close(two['weights'][k], w, rtol=1e-3, atol=1e-4, msg=k)


def test_killed_mid_epoch_resumes_to_the_same_end(tmp_path):
    whole = launch('fit', tmp_path/'whole', 2)
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
