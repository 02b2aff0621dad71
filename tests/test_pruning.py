"Robust pruning: exact kept counts on every layer of VGG-11/VGG-16/WRN-28-4, stored HARP counts, resume."
import math, shutil

import pytest
import torch
from hypothesis import given, settings, strategies as st

from robustsparsesnn.data import get_loaders
from robustsparsesnn.datasets import synthetic_spec
from robustsparsesnn.layers import kept_count, prunable_layers
from robustsparsesnn.models import vgg11, vgg16, wrn28_4
from robustsparsesnn.pruning import (PruneConfig, apply_masks, fit_densities, global_density, global_sparsity,
                                     harp_freeze, harp_init, hydra_init, lwm_prune, masks_of, prune, sparsity_table)
from robustsparsesnn.training import TrainConfig

torch.set_num_threads(2)
BUILDERS = dict(vgg11=vgg11, vgg16=vgg16, wrn28_4=wrn28_4)


def tiny(name, seed=0):
    torch.manual_seed(seed)
    return BUILDERS[name](num_classes=10, in_channels=3, width=0.125)


def check_topk(scores, mask, k):
    assert int(mask.sum()) == k
    if 0 < k < mask.numel(): assert scores[mask].min() >= scores[~mask].max()


@pytest.mark.parametrize('arch', list(BUILDERS))
@pytest.mark.parametrize('density', [1, 0.5, 0.1, 0.01])
def test_kept_counts_and_largest_scores(arch, density):
    net = tiny(arch)
    w = {n: l.weight.detach().abs().clone() for n, l in prunable_layers(net)}
    twin = tiny(arch)  # same seed: same weights
    lwm_prune(net, density)
    hydra_init(twin, density)
    rows = sparsity_table(net)
    assert rows == sparsity_table(twin)  # HYDRA's step 0 is LWM
    for r, (name, layer), (_, hl) in zip(rows, prunable_layers(net), prunable_layers(twin)):
        assert r['kept'] == max(1, round(density * r['weights']))
        check_topk(w[name], layer.mask, r['kept'])  # LWM keeps the largest |w|
        check_topk(hl.scores.detach().abs(), hl.mask_in_use(), r['kept'])  # HYDRA keeps the largest |s|
        assert torch.equal(layer.mask, hl.mask_in_use())
    assert global_sparsity(net) == 1 - sum(r['kept'] for r in rows) / sum(r['weights'] for r in rows)


@pytest.mark.parametrize('arch', list(BUILDERS))
def test_masks_round_trip_and_every_layer_runs(arch):
    net = tiny(arch)
    lwm_prune(net, 0.1)
    other = apply_masks(tiny(arch, seed=1), masks_of(net))
    other.load_state_dict(net.state_dict())
    x = torch.rand(2, 3, 32, 32)
    net.eval(); other.eval()
    assert torch.equal(net(x), other(x))
    # no unused masked layer (HYDRA's WRN bug): every prunable layer takes part in the forward
    seen = set()
    hooks = [l.register_forward_hook(lambda m, i, o, n=n: seen.add(n)) for n, l in prunable_layers(net)]
    net(x)
    for h in hooks: h.remove()
    assert seen == {n for n, _ in prunable_layers(net)}
    assert len(seen) == {'vgg11': 11, 'vgg16': 16, 'wrn28_4': 29}[arch]


def test_harp_counts_are_per_layer_never_global():
    net = tiny('vgg11')
    harp_init(net, 0.1)
    layers = list(prunable_layers(net))
    with torch.no_grad():
        for i, (_, l) in enumerate(layers): l.rate.fill_(-3.0 + 0.5 * i)
    own = [kept_count(float(l.current_density().detach()), l.weight.numel()) for _, l in layers]
    info = harp_freeze(net, 0.1, correct=False)
    assert [r['kept'] for r in sparsity_table(net)] == own
    n = [l.weight.numel() for _, l in layers]
    g = info['learned_global']
    assert own != [kept_count(g, ni) for ni in n]  # a global rate would give other counts
    assert all(l.scores is None and l.rate is None for _, l in layers)
    assert global_density(net) == sum(own) / sum(n)


def test_harp_correction_meets_target_and_floors():
    net = tiny('vgg16')
    harp_init(net, 0.05)
    layers = list(prunable_layers(net))
    with torch.no_grad():
        for i, (_, l) in enumerate(layers): l.rate.fill_(-2.0 + 0.2 * i)  # far above the target
    learned = [float(l.current_density().detach()) for _, l in layers]
    info = harp_freeze(net, 0.05)
    d = global_density(net)
    assert 0.05 * 0.99 <= d <= 0.05 * 1.01
    dens = [r['density'] for r in sparsity_table(net)]
    assert all(r['kept'] >= kept_count(0.005, r['weights']) for r in sparsity_table(net))
    # one common factor: the order of the learned densities is kept (up to rounding of tiny layers)
    big = [i for i, (_, l) in enumerate(layers) if l.weight.numel() > 1000]
    for i in big:
        for j in big:
            if learned[i] > learned[j] * 1.05: assert dens[i] >= dens[j]
    assert info['scale'] < 1


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 100_000), st.floats(0.0, 1.0)), min_size=1, max_size=12),
       st.sampled_from([0.5, 0.1, 0.05, 0.01]))
def test_fit_densities(layers, target):
    n = [a for a, _ in layers]
    floors = [0.1 * target] * len(n)
    k = [max(f, b) for f, b in zip(floors, (b for _, b in layers))]
    kept, c = fit_densities(n, k, target, floors)
    budget = max(math.floor(target * sum(n) + 1e-9), len(n))
    assert all(1 <= kn <= ni for kn, ni in zip(kept, n))
    assert all(kn >= kept_count(f, ni) for kn, f, ni in zip(kept, floors, n))
    floor_total = sum(kept_count(f, ni) for f, ni in zip(floors, n))
    assert sum(kept) <= max(budget, floor_total)


def _setup():
    spec = synthetic_spec(in_channels=1, image_size=16, n_train=200, n_test=50)
    dl = get_loaders(spec, batch_size=32, n_train=64, n_val=16, n_test=16, seed=0)
    tc = TrainConfig(objective='trades', eps=8 / 255, attack_steps=1, epochs=1, lr=0.05, eval_n=16, eval_steps=2)
    cfg = PruneConfig(scores=tc, finetune=tc)
    def net():
        torch.manual_seed(0)
        return vgg11(num_classes=10, in_channels=1, width=0.125, mean=spec.mean, std=spec.std)
    return dl, cfg, net


def test_prune_resumes_each_stage(tmp_path):
    dl, cfg, net = _setup()
    a = net()
    rep = prune(a, 'harp', 0.1, dl, cfg, run=tmp_path / 'a')
    assert 0.1 * 0.99 <= rep['global_density'] <= 0.1 * 1.01
    # everything done: a second call reads the stages back and gives the same model
    b = net()
    prune(b, 'harp', 0.1, dl, cfg, run=tmp_path / 'a')
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    # stopped after the score phase: only its files survive; the rerun continues from them
    (tmp_path / 'c').mkdir()
    for f in (tmp_path / 'a').iterdir():
        if f.name.startswith('scores') or f.name == 'manifest.json': shutil.copy(f, tmp_path / 'c' / f.name)
    c = net()
    rep_c = prune(c, 'harp', 0.1, dl, cfg, run=tmp_path / 'c')
    assert rep_c['table'] == rep['table']
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), c.state_dict().values()))


# HARP's settings and the stage configs are checked when the config is made, not after hours of training.
@pytest.mark.parametrize('kw, msg', [
    (dict(gamma=-0.5), 'gamma must be in [0, inf), got -0.5'),
    (dict(gamma=float('inf')), 'gamma must be finite and in [0, inf), got inf'),
    (dict(gamma=float('nan')), 'gamma must be in [0, inf), got nan'),
    (dict(gamma=True), 'gamma must be a finite number in [0, inf), got True'),
    (dict(growth=0.9), 'growth must be in [1, inf), got 0.9'),
    (dict(growth=float('inf')), 'growth must be finite and in [1, inf), got inf'),
    (dict(floor=0), 'floor must be in (0, 1), got 0'),
    (dict(floor=-0.1), 'floor must be in (0, 1), got -0.1'),
    (dict(floor=1), 'floor must be in (0, 1), got 1'),
    (dict(floor=float('inf')), 'floor must be finite and in (0, 1), got inf'),
    (dict(scores=dict(epochs=2.5)), 'epochs must be an integer in 1..inf, got 2.5'),
    (dict(finetune=dict(eval_steps=-1)), 'eval_steps must be an integer in 1..inf, got -1'),
    (dict(scores=[]), 'scores must be a TrainConfig or a dict of its settings, got []'),
])
def test_prune_config_refuses_bad_settings(kw, msg):
    with pytest.raises(ValueError) as e: PruneConfig(**kw)
    assert msg in str(e.value)
