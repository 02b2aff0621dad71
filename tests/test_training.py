"Training survives SIGKILL: a killed run, resumed, ends with the weights of an uninterrupted one."
import os, random, signal, subprocess, sys, textwrap, time

import pytest
import torch

from robustsparsesnn.core import load_state

TRAIN = textwrap.dedent("""
    import sys, torch
    from robustsparsesnn.data import get_loaders, synthetic_spec
    from robustsparsesnn.models import vgg11
    from robustsparsesnn.training import TrainConfig, fit
    torch.set_num_threads(1)
    torch.manual_seed(0)
    d = get_loaders(synthetic_spec(in_channels=1, image_size=16, n_train=300, n_test=50), batch_size=32, n_train=192, n_val=32, seed=0)
    m = vgg11(num_classes=10, in_channels=d.spec.in_channels, width=0.125, mean=d.spec.mean, std=d.spec.std)
    cfg = TrainConfig(objective='trades', eps=8/255, attack_steps=2, epochs=4, lr=0.05, eval_n=32)
    fit(m, d, cfg, run=sys.argv[1], name='ann', restore_best=False)
    print('done', flush=True)
""")


def _run(folder, kill_after=None):
    p = subprocess.Popen([sys.executable, '-c', TRAIN, str(folder)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         text=True, env={**os.environ, 'RSNN_PROGRESS': '0'})
    if kill_after is None:
        out, _ = p.communicate(timeout=600)
        assert p.returncode == 0 and 'done' in out
        return
    deadline = time.time() + 300
    while not (folder / 'ann-last.safetensors').exists() and time.time() < deadline: time.sleep(0.05)
    time.sleep(kill_after)  # counted from the first finished epoch
    os.kill(p.pid, signal.SIGKILL); p.wait()


def test_sigkill_then_resume_matches_uninterrupted(tmp_path):
    _run(tmp_path / 'whole')
    whole = load_state(tmp_path / 'whole' / 'ann-last.safetensors')
    t_epoch = whole['history'][-1]['seconds']
    rng = random.Random(os.getpid())
    _run(tmp_path / 'killed', kill_after=rng.uniform(0.1, 1.8) * t_epoch)   # somewhere in epochs 2-3
    partial = load_state(tmp_path / 'killed' / 'ann-last.safetensors')
    assert 1 <= partial['epoch'] < 4, f"the kill should land mid-run, it landed after epoch {partial['epoch']}"
    _run(tmp_path / 'killed')
    resumed = load_state(tmp_path / 'killed' / 'ann-last.safetensors')
    assert resumed['epoch'] == 4
    for k, v in whole['model'].items(): assert torch.equal(v, resumed['model'][k]), k
