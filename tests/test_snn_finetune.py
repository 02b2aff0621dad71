"SNN finetuning survives SIGKILL; masks hold bit for bit through many optimizer steps."
import textwrap
from dataclasses import replace

import pytest
import torch

from killrun import kill_resume_matches
from robustsparsesnn.models import vgg11
from robustsparsesnn.snn_finetune import PAPER_E2E, PAPER_FINETUNE, e2e_snn, finetune, random_mask
from robustsparsesnn.training import TrainConfig

# CPU-sized SNN finetuning: the paper's objective (Eq. 8) at 8/255, 3 epochs, validation PGD-5 on 200 samples
SNN_CPU = TrainConfig(objective='trades', eps=8/255, beta=2.0, attack='rfgsm-kl', epochs=3, lr=1e-3, momentum=0.9,
                      weight_decay=1e-4, schedule='cosine', eval_eps=8/255, eval_steps=5, eval_n=200)

TRAIN = textwrap.dedent("""
    import sys, torch
    from robustsparsesnn.data import get_loaders
    from robustsparsesnn.datasets import synthetic_spec
    from robustsparsesnn.layers import prunable_layers
    from robustsparsesnn.models import vgg11
    from robustsparsesnn.conversion import convert
    from robustsparsesnn.snn_finetune import finetune
    from robustsparsesnn.training import TrainConfig
    torch.set_num_threads(1)
    torch.manual_seed(0)
    d = get_loaders(synthetic_spec(in_channels=1, image_size=16, n_train=200, n_test=32), batch_size=32, n_train=128, n_val=32, seed=0)
    ann = vgg11(num_classes=10, in_channels=1, width=0.125, mean=d.spec.mean, std=d.spec.std)
    with torch.no_grad():
        for _, l in prunable_layers(ann):
            l.mask.copy_(torch.rand_like(l.weight) < 0.2); l.weight.mul_(l.mask)
    snn = convert(ann, d.train, T=2, T_c=8, n_batches=2, batch_size=32)
    cfg = TrainConfig(objective='trades', eps=8/255, beta=2.0, attack='rfgsm-kl', epochs=4, lr=0.05, momentum=0.9,
                      weight_decay=1e-4, schedule='cosine', eval_eps=8/255, eval_steps=2, eval_n=16)
    finetune(snn, d, cfg, T=2, run=sys.argv[1], name='snn', restore_best=False)
    print('done', flush=True)
""")


def test_sigkill_then_resume_matches_uninterrupted(tmp_path):
    whole = kill_resume_matches(TRAIN, tmp_path, 'snn-last.safetensors', epochs=4)
    th = [k for k in whole['model'] if k.endswith('threshold')]
    assert th and all(torch.isfinite(whole['model'][k]) for k in th)


def test_masks_hold_bit_for_bit_through_finetuning():
    "After N finetuning steps (momentum 0.9, weight decay 1e-3, lr 0.05), zero set == ~ANN mask in every layer."
    from robustsparsesnn.data import get_loaders
    from robustsparsesnn.datasets import synthetic_spec
    from robustsparsesnn.layers import prunable_layers
    from robustsparsesnn.models import vgg11
    from robustsparsesnn.conversion import convert
    from robustsparsesnn.snn_finetune import finetune, zero_set_matches, snn_health
    torch.manual_seed(1)
    d = get_loaders(synthetic_spec(in_channels=1, image_size=16, n_train=200, n_test=32), batch_size=16, n_train=128,
                    n_val=16, seed=1)
    ann = vgg11(num_classes=10, in_channels=1, width=0.125, mean=d.spec.mean, std=d.spec.std)
    with torch.no_grad():
        for _, l in prunable_layers(ann):
            l.mask.copy_(torch.rand_like(l.weight) < 0.3); l.weight.mul_(l.mask)
    masks = {n: l.mask.clone() for n, l in prunable_layers(ann)}
    snn = convert(ann, d.train, T=2, T_c=8, n_batches=2, batch_size=16)
    start = {k: v for k, v in snn.conversion["thresholds"].items()}
    hist = finetune(snn, d, replace(SNN_CPU, epochs=2, lr=0.05, weight_decay=1e-3, eval_n=8, eval_steps=1), T=2)
    assert len(hist) == 2                                    # 2 epochs x 8 steps
    assert all(zero_set_matches(snn, masks).values())
    h = snn_health(snn)
    assert h['finite'] and h['in_use_above_floor'], h
    # thresholds that did not start at the floor (an untrained net's head can be nearly silent) stay above it
    assert not [n for n in h['below_floor'] if start[n] > 0.1], (h, start)


def _tiny(): return vgg11(num_classes=3, in_channels=1, width=0.125)


# Bad counts and seeds are refused before anything is trained or changed.
@pytest.mark.parametrize('call, msg', [
    (lambda: finetune(_tiny(), None, SNN_CPU, T=0), 'T (SNN time steps) must be an integer in 1..inf, got 0'),
    (lambda: finetune(_tiny(), None, SNN_CPU, T=2.5), 'T (SNN time steps) must be an integer in 1..inf, got 2.5'),
    (lambda: finetune(_tiny(), None, SNN_CPU, T=True), 'T (SNN time steps) must be an integer in 1..inf, got True'),
    (lambda: replace(SNN_CPU, epochs=0), 'epochs must be an integer in 1..inf, got 0'),
    (lambda: replace(PAPER_FINETUNE, eval_steps=-10), 'eval_steps must be an integer in 1..inf, got -10'),
    (lambda: replace(PAPER_E2E, eval_n=0.5), 'eval_n must be an integer in 1..inf, got 0.5'),
    (lambda: replace(PAPER_E2E, seed=-2), 'seed must be an integer in 0..4294967295, got -2'),
    (lambda: e2e_snn(_tiny(), _tiny(), seed=-1), 'seed must be an integer in 0..4294967295, got -1'),
    (lambda: e2e_snn(_tiny(), _tiny(), seed=3.5), 'seed must be an integer in 0..4294967295, got 3.5'),
    (lambda: e2e_snn(_tiny(), _tiny(), T=0), 'T (SNN time steps) must be an integer in 1..inf, got 0'),
    (lambda: e2e_snn(_tiny(), _tiny(), T=4.0), 'T (SNN time steps) must be an integer in 1..inf, got 4.0'),
    (lambda: random_mask((2, 3), 7), 'k (weights to keep) must be an integer in 0..6, got 7'),
    (lambda: random_mask((2, 3), 2.5), 'k (weights to keep) must be an integer in 0..6, got 2.5'),
])
def test_bad_settings(call, msg):
    with pytest.raises(ValueError) as e: call()
    assert msg in str(e.value)
