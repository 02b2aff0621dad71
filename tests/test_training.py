"Training survives SIGKILL: a killed run, resumed, ends with the weights of an uninterrupted one; bad settings are refused."
import textwrap
from dataclasses import replace

import numpy as np
import pytest
from torch import nn

from killrun import kill_resume_matches
from robustsparsesnn.training import PAPER_PRETRAIN, TrainConfig, fit

TRAIN = textwrap.dedent("""
    import sys, torch
    from robustsparsesnn.data import get_loaders
    from robustsparsesnn.datasets import synthetic_spec
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


def test_sigkill_then_resume_matches_uninterrupted(tmp_path):
    kill_resume_matches(TRAIN, tmp_path, 'ann-last.safetensors', epochs=4)


# Every count and seed of a stage is checked when the config is made, before anything trains.
@pytest.mark.parametrize('call, msg', [
    (lambda: TrainConfig(attack_steps=0), 'attack_steps must be an integer in 1..inf, got 0'),
    (lambda: TrainConfig(attack_steps=2.5), 'attack_steps must be an integer in 1..inf, got 2.5'),
    (lambda: TrainConfig(epochs=0), 'epochs must be an integer in 1..inf, got 0'),
    (lambda: TrainConfig(epochs=100.0), 'epochs must be an integer in 1..inf, got 100.0'),
    (lambda: TrainConfig(epochs='100'), "epochs must be an integer in 1..inf, got '100'"),
    (lambda: TrainConfig(eval_steps=-1), 'eval_steps must be an integer in 1..inf, got -1'),
    (lambda: TrainConfig(eval_steps=0), 'eval_steps must be an integer in 1..inf, got 0'),
    (lambda: TrainConfig(eval_steps=True), 'eval_steps must be an integer in 1..inf, got True'),
    (lambda: TrainConfig(eval_n=0), 'eval_n must be an integer in 1..inf, got 0'),
    (lambda: TrainConfig(eval_n=-512), 'eval_n must be an integer in 1..inf, got -512'),
    (lambda: TrainConfig(eval_eps=-0.1), 'eval_eps must be in [0, 1], got -0.1'),
    (lambda: TrainConfig(seed=-1), 'seed must be an integer in 0..4294967295, got -1'),
    (lambda: TrainConfig(seed=2**32), 'seed must be an integer in 0..4294967295, got 4294967296'),
    (lambda: TrainConfig(seed=1.5), 'seed must be an integer in 0..4294967295, got 1.5'),
    (lambda: replace(PAPER_PRETRAIN, eval_steps=-3), 'eval_steps must be an integer in 1..inf, got -3'),
    (lambda: fit(nn.Linear(2, 2), None, TrainConfig(), stop_after=-1), 'stop_after must be an integer in 0..inf, got -1'),
    (lambda: fit(nn.Linear(2, 2), None, TrainConfig(), stop_after=0.5), 'stop_after must be an integer in 0..inf, got 0.5'),
])
def test_bad_settings(call, msg):
    with pytest.raises(ValueError) as e: call()
    assert msg in str(e.value)


def test_counts_are_plain_ints():
    "NumPy integers are accepted and stored as ints (the config is saved as JSON / TOML)."
    cfg = TrainConfig(epochs=np.int64(3), eval_steps=np.int32(5), seed=np.int64(7))
    assert (cfg.epochs, cfg.eval_steps, cfg.seed) == (3, 5, 7) and type(cfg.epochs) is int and type(cfg.seed) is int
