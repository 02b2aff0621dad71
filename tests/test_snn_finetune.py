"SNN finetuning survives SIGKILL; masks hold bit for bit through many optimizer steps."
import textwrap

import torch

from killrun import kill_resume_matches

TRAIN = textwrap.dedent("""
    import sys, torch
    from robustsparsesnn.data import get_loaders, synthetic_spec
    from robustsparsesnn.layers import prunable_layers
    from robustsparsesnn.models import vgg11
    from robustsparsesnn.conversion import convert
    from robustsparsesnn.snn_finetune import snn_preset, finetune
    torch.set_num_threads(1)
    torch.manual_seed(0)
    d = get_loaders(synthetic_spec(in_channels=1, image_size=16, n_train=200, n_test=32), batch_size=32, n_train=128, n_val=32, seed=0)
    ann = vgg11(num_classes=10, in_channels=1, width=0.125, mean=d.spec.mean, std=d.spec.std)
    with torch.no_grad():
        for _, l in prunable_layers(ann):
            l.mask.copy_(torch.rand_like(l.weight) < 0.2); l.weight.mul_(l.mask)
    snn = convert(ann, d.train, T=2, T_c=8, n_batches=2, batch_size=32)
    cfg = snn_preset('snn_cpu', epochs=4, lr=0.05, eval_n=16, eval_steps=2)
    finetune(snn, d, cfg, T=2, run=sys.argv[1], name='snn', restore_best=False)
    print('done', flush=True)
""")


def test_sigkill_then_resume_matches_uninterrupted(tmp_path):
    whole = kill_resume_matches(TRAIN, tmp_path, 'snn-last.safetensors', epochs=4)
    th = [k for k in whole['model'] if k.endswith('threshold')]
    assert th and all(torch.isfinite(whole['model'][k]) for k in th)


def test_masks_hold_bit_for_bit_through_finetuning():
    "After N finetuning steps (momentum 0.9, weight decay 1e-3, lr 0.05), zero set == ~ANN mask in every layer."
    from robustsparsesnn.data import get_loaders, synthetic_spec
    from robustsparsesnn.layers import prunable_layers
    from robustsparsesnn.models import vgg11
    from robustsparsesnn.conversion import convert
    from robustsparsesnn.snn_finetune import snn_preset, finetune, zero_set_matches, snn_health
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
    hist = finetune(snn, d, snn_preset('snn_cpu', epochs=2, lr=0.05, weight_decay=1e-3, eval_n=8, eval_steps=1), T=2)
    assert len(hist) == 2                                    # 2 epochs x 8 steps
    assert all(zero_set_matches(snn, masks).values())
    h = snn_health(snn)
    assert h['finite'] and h['in_use_above_floor'], h
    # thresholds that did not start at the floor (an untrained net's head can be nearly silent) stay above it
    assert not [n for n in h['below_floor'] if start[n] > 0.1], (h, start)
