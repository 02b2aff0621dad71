"""Energy and storage: fan-out against a brute-force loop over every neuron and synapse on random masked nets
(random sizes, densities, VGG and WRN), Eq. 12 by hand, compact files bit for bit, bad input."""
import math

import pytest
import torch
from torch import nn
from hypothesis import given, settings, strategies as st, HealthCheck

from robustsparsesnn.layers import MaskedConv2d, prunable_layers, topk_mask, kept_count
from robustsparsesnn.models import VGG, WideResNet
from robustsparsesnn.neurons import spiking_neurons
from robustsparsesnn.energy import (fan_out, first_layer_macs, record_spikes, synaptic_ops, energy_report,
                                    relative_energy, model_masks, SpikeRecord)
from robustsparsesnn.storage import save_compact, load_compact, storage_bytes

torch.set_num_threads(1)


def random_masks_(model, density, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, l in prunable_layers(model):
            l.mask.copy_(topk_mask(torch.rand(l.weight.shape, generator=g), kept_count(density, l.weight.numel())))
            l.weight.mul_(l.mask)
    return model


def conv_synapses(M, c, h, w, stride, pad, Ho, Wo):
    "Loop over every outgoing synapse of input unit (c, h, w) of a conv with mask M."
    n = 0
    for o in range(M.shape[0]):
        for kh in range(M.shape[2]):
            for kw in range(M.shape[3]):
                ph, pw = h + pad - kh, w + pad - kw
                if M[o, c, kh, kw] and ph % stride == 0 and pw % stride == 0 and 0 <= ph // stride < Ho and 0 <= pw // stride < Wo:
                    n += 1
    return n


def adaptive_windows(n_in, n_out):
    return [range((i * n_in) // n_out, math.ceil((i + 1) * n_in / n_out)) for i in range(n_out)]


def brute_vgg(model, H, W):
    feats, psi = list(model.features), {}
    convs = [i for i, l in enumerate(feats) if isinstance(l, MaskedConv2d)]
    sizes, h, w = {}, H, W
    for i, l in enumerate(feats):
        if isinstance(l, MaskedConv2d): sizes[i] = (h, w)
        if isinstance(l, nn.AvgPool2d): h, w = math.ceil(h / 2), math.ceil(w / 2)
    for j, ci in enumerate(convs):
        (h0, w0), C = sizes[ci], feats[ci].out_channels
        pooled = isinstance(feats[ci + 3], nn.AvgPool2d)
        p = torch.zeros(C, h0, w0)
        for c in range(C):
            for y in range(h0):
                for x in range(w0):
                    yy, xx = (y // 2, x // 2) if pooled else (y, x)
                    if j + 1 < len(convs):
                        p[c, y, x] = conv_synapses(feats[convs[j + 1]].mask, c, yy, xx, 1, 1, *sizes[convs[j + 1]])
                    else:
                        M = model.classifier[0].mask
                        for a, rows in enumerate(adaptive_windows(math.ceil(h0 / 2), 2)):
                            for b, cols in enumerate(adaptive_windows(math.ceil(w0 / 2), 2)):
                                if yy in rows and xx in cols: p[c, y, x] += int(M[:, c * 4 + a * 2 + b].sum())
        psi[f'features.{ci + 2}'] = p
    cls = model.classifier
    psi['classifier.1'] = cls[2].mask.sum(0).float()
    psi['classifier.3'] = cls[4].mask.sum(0).float()
    return psi


def brute_wrn(model, H, W):
    psi, h, w = {}, H, W
    for bi, blk in enumerate(model.blocks):
        s = blk.conv1.stride[0]
        Ho, Wo = (h - 1) // s + 1, (w - 1) // s + 1
        p = torch.zeros(blk.conv1.in_channels, h, w)
        for c in range(p.shape[0]):
            for y in range(h):
                for x in range(w):
                    p[c, y, x] = conv_synapses(blk.conv1.mask, c, y, x, s, 1, Ho, Wo)
                    if blk.shortcut is not None: p[c, y, x] += conv_synapses(blk.shortcut.mask, c, y, x, s, 0, Ho, Wo)
        psi[f'blocks.{bi}.act1'] = p
        p2 = torch.zeros(blk.conv2.in_channels, Ho, Wo)
        for c in range(p2.shape[0]):
            for y in range(Ho):
                for x in range(Wo): p2[c, y, x] = conv_synapses(blk.conv2.mask, c, y, x, 1, 1, Ho, Wo)
        psi[f'blocks.{bi}.act2'] = p2
        h, w = Ho, Wo
    psi['head.1'] = model.head[4].mask.sum(0).float()[:, None, None].expand(-1, h, w).clone()
    return psi


SETTINGS = dict(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))


@settings(**SETTINGS)
@given(c1=st.integers(1, 4), c2=st.integers(1, 5), two=st.booleans(), H=st.integers(3, 9), W=st.integers(3, 9),
       density=st.sampled_from([1.0, 0.5, 0.1, 0.01]), seed=st.integers(0, 1000))
def test_fan_out_vgg_brute_force(c1, c2, two, H, W, density, seed):
    blocks = ((c1,), (c2, c2)) if two else ((c1,), (c2,))
    net = random_masks_(VGG(blocks, num_classes=3, in_channels=2), density, seed)
    psi, ref = fan_out(net, (2, H, W)), brute_vgg(net, H, W)
    assert list(psi) == list(ref)
    for k in ref: assert torch.equal(psi[k], ref[k]), k


@settings(**SETTINGS)
@given(H=st.integers(3, 8), W=st.integers(3, 8), density=st.sampled_from([1.0, 0.3, 0.05]), seed=st.integers(0, 1000))
def test_fan_out_wrn_brute_force(H, W, density, seed):
    net = random_masks_(WideResNet(10, 1, num_classes=3, in_channels=1, width=0.25), density, seed)
    psi, ref = fan_out(net, (1, H, W)), brute_wrn(net, H, W)
    assert list(psi) == list(ref)
    for k in ref: assert torch.equal(psi[k], ref[k]), k


def test_average_pooling_is_eq11_normalisation():
    net = VGG(((3,), (4,)), num_classes=3, in_channels=1)
    ev, av = fan_out(net, (1, 8, 8)), fan_out(net, (1, 8, 8), pooling='average')
    assert torch.equal(av['features.2'] * 4, ev['features.2'])        # 2x2 windows: Eq. 11's w'h'/(wh) = 1/4
    assert torch.equal(av['classifier.1'], ev['classifier.1'])         # no pooling before a linear layer


def test_fan_out_leaves_model_untouched():
    net = random_masks_(VGG(((3,), (4,)), num_classes=3, in_channels=1), 0.5, 0).set_T(4).train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    fan_out(net, (1, 8, 8)); first_layer_macs(net, (1, 8, 8))
    assert net.training and all(m.T == 4 for _, m in spiking_neurons(net))
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert all(p.grad is None for p in net.parameters())


def test_eq12_by_hand_and_peer_count():
    torch.manual_seed(0)
    net = random_masks_(VGG(((3,), (4, 4)), num_classes=3, in_channels=1), 0.1, 1).set_T(3)
    with torch.no_grad():
        for _, n in spiking_neurons(net): n.threshold.fill_(0.2)
    x = torch.rand(10, 1, 8, 8)
    rep, rec = energy_report(net, x), record_spikes(net, x)
    exact, dense = brute_vgg(net, 8, 8), fan_out(net, (1, 8, 8), masks='dense')
    assert rep.acs == pytest.approx(sum((rec.counts[k].double() * exact[k]).sum().item() for k in exact) / 10)
    assert rep.acs_dense_fanout == pytest.approx(sum((rec.counts[k].double() * dense[k]).sum().item() for k in exact) / 10)
    assert rep.acs < rep.acs_dense_fanout
    assert rep.macs == 3 * first_layer_macs(net, (1, 8, 8))
    assert rep.energy_pj == pytest.approx(0.9 * rep.acs)
    assert relative_energy({'a': rep, 'b': rep})[1]['energy_ratio'] == 1


def test_bad_input():
    net = VGG(((3,), (4,)), num_classes=3, in_channels=1)
    x = torch.rand(4, 1, 8, 8)
    with pytest.raises(ValueError, match='T=0'): record_spikes(net, x)
    with pytest.raises(ValueError, match='no recorded spikes'): synaptic_ops(SpikeRecord({}, 0, 2, (1, 8, 8)), {})
    rec = record_spikes(net.set_T(2), x)
    other = WideResNet(10, 1, num_classes=3, in_channels=1, width=0.25)
    with pytest.raises(ValueError, match='do not match'): synaptic_ops(rec, fan_out(other, (1, 8, 8)))
    with pytest.raises(ValueError, match="has shape"): model_masks(net, {'features.0': torch.ones(2, 2)})
    with pytest.raises(ValueError, match="does not have"): model_masks(net, {'nope': torch.ones(2, 2)})
    with pytest.raises(ValueError, match="shape"): synaptic_ops(rec, {k: v[..., :1] for k, v in fan_out(net, (1, 8, 8)).items()})


@pytest.mark.parametrize('kw, msg', [
    (dict(n=0), 'n must be an integer in 1..inf, got 0'),
    (dict(n=-2), 'n must be an integer in 1..inf, got -2'),
    (dict(n=2.5), 'n must be an integer in 1..inf, got 2.5'),
    (dict(n=4.0), 'n must be an integer in 1..inf, got 4.0'),
    (dict(batch_size=0), 'batch_size must be an integer in 1..inf, got 0'),
    (dict(batch_size=1.5), 'batch_size must be an integer in 1..inf, got 1.5'),
])
def test_bad_counts(kw, msg):
    "A fractional or non-positive sample count is refused, never truncated (also through energy_report)."
    net = VGG(((3,), (4,)), num_classes=3, in_channels=1).set_T(2)
    x = torch.rand(4, 1, 8, 8)
    with pytest.raises(ValueError) as e: record_spikes(net, x, **kw)
    assert msg in str(e.value)
    if 'n' in kw:
        with pytest.raises(ValueError) as e: energy_report(net, x, **kw)
        assert msg in str(e.value)


@settings(**SETTINGS)
@given(density=st.sampled_from([1.0, 0.7, 0.2, 0.03, 0.001]), fmt=st.sampled_from(['auto', 'bitmask', 'csr']),
       wrn=st.booleans(), seed=st.integers(0, 1000))
def test_compact_round_trip_bit_for_bit(tmp_path_factory, density, fmt, wrn, seed):
    build = (lambda: WideResNet(10, 1, num_classes=3, in_channels=1, width=0.5)) if wrn else \
            (lambda: VGG(((3,), (5, 5)), num_classes=3, in_channels=1))
    torch.manual_seed(seed)
    src = random_masks_(build(), density, seed)
    with torch.no_grad():
        for _, n in spiking_neurons(src): n.threshold.uniform_(0.1, 3)
    f = tmp_path_factory.mktemp('c') / 'c.safetensors'
    save_compact(src, f, fmt=fmt)
    dst = load_compact(build(), f)
    a, b = src.state_dict(), dst.state_dict()
    assert list(a) == list(b) and all(a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]) for k in a)


def test_compact_is_smaller(tmp_path):
    net = random_masks_(VGG(((16,), (32, 32)), num_classes=3, in_channels=1), 0.1, 0)
    b = storage_bytes(net, tmp_path)
    assert b['compact_fp16'] < b['compact_fp32'] < b['dense_fp32'] < b['checkpoint_with_masks']
