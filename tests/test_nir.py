"""NIR export (`to_nir` / `from_nir` / `save_nir`): the round trip back to torch gives the SNN's logits on random
sparse VGGs (sizes, seeds, T, dtypes), also through a .nir file; the graph keeps exactly the masks' non-zeros;
the spike condition; bad input."""
import sys
from unittest import mock

import numpy as np
import pytest
import torch
from torch import nn
from hypothesis import given, settings, strategies as st, HealthCheck

from robustsparsesnn.conversion import estimate_bn_stats
from robustsparsesnn.core import seed_everything
from robustsparsesnn.energy import record_spikes
from robustsparsesnn.nir_io import to_nir, from_nir, save_nir, fold_bn
from robustsparsesnn.layers import prunable_layers, topk_mask, kept_count
from robustsparsesnn.models import VGG, WideResNet, vgg11
from robustsparsesnn.neurons import spiking_neurons, set_reset

nir = pytest.importorskip('nir')

torch.set_num_threads(1)
NODE_TYPES = {'Input', 'Output', 'Conv2d', 'IF', 'AvgPool2d', 'Flatten', 'Affine'}


def random_snn(build, c, size, T=6, density=0.2, seed=0, dtype=torch.float64, n=8):
    "A random sparse SNN with random thresholds, BN affine and normalisation, BN statistics of its own currents."
    seed_everything(seed)
    snn = build(c).to(dtype)
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, c, size, size, generator=g, dtype=dtype)
    with torch.no_grad():
        for _, l in prunable_layers(snn):
            l.mask.copy_(topk_mask(torch.rand(l.weight.shape, generator=g), kept_count(density, l.weight.numel())))
            l.weight.mul_(l.mask)
        for m in snn.modules():
            if isinstance(m, nn.BatchNorm2d): m.weight.uniform_(0.5, 1.5); m.bias.normal_(0, 0.2)
        for _, m in spiking_neurons(snn): m.threshold.uniform_(0.5, 1.0)
    estimate_bn_stats(snn.set_T(T), [x])
    return snn.eval(), x


def vgg11_tiny(c): return vgg11(in_channels=c, width=0.125, mean=[0.3] * c, std=[0.4] * c)
def vgg_tiny(c): return VGG(((4,), (6, 6)), num_classes=5, in_channels=c, mean=[0.5, 0.4], std=[0.2, 0.3])


def check_round_trip(snn, x, tmp_path=None):
    shape = tuple(x.shape[1:])
    graph = to_nir(snn, shape)
    assert {type(v).__name__ for v in graph.nodes.values()} <= NODE_TYPES
    for name, l in prunable_layers(snn):       # zeros exactly where weight * mask is zero (a kept weight can be 0.0 itself)
        nonzero = (l.weight * l.mask_in_use() != 0).cpu().numpy()
        assert np.array_equal(graph.nodes[name].weight != 0, nonzero) and nonzero.sum() <= l.kept, name
    for name, m in spiking_neurons(snn): assert np.all(graph.nodes[name].v_threshold == m.vth.item()), name
    with torch.no_grad():
        ref = snn(x)
        torch.testing.assert_close(from_nir(graph)(x), ref, rtol=0, atol=1e-12)
        if tmp_path is not None:
            size = save_nir(snn, tmp_path / 'm.nir', shape)
            assert size == (tmp_path / 'm.nir').stat().st_size > 0
            torch.testing.assert_close(from_nir(nir.read(tmp_path / 'm.nir'))(x), ref, rtol=0, atol=1e-12)
    return graph, ref


@pytest.mark.parametrize('size,seed', [(16, 0), (32, 1), (64, 2)])
def test_vgg11_round_trip(size, seed, tmp_path):
    snn, x = random_snn(vgg11_tiny, 1, size, T=8, seed=seed)
    rates = record_spikes(snn, x).rates()
    assert all(r > 0 for r in rates.values()), rates        # every layer spikes: the equality is not trivial
    graph, ref = check_round_trip(snn, x, tmp_path)
    assert int(graph.metadata['T']) == 8 and ref.std() > 0


def test_float32_round_trip():
    check_round_trip(*random_snn(vgg11_tiny, 1, 32, T=4, seed=3, dtype=torch.float32))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(size=st.sampled_from([8, 12, 16, 20, 24]), T=st.integers(1, 6), density=st.floats(0.05, 1.0), seed=st.integers(0, 10**6))
def test_tiny_vgg_round_trip(size, T, density, seed):
    "Two pools: the adaptive pooling sees 2x2 (identity), 3x3 and 5x5 (overlapping: Affine) or 6x6 (AvgPool2d k=3)."
    check_round_trip(*random_snn(vgg_tiny, 2, size, T=T, density=density, seed=seed, n=4))


def test_the_check_can_fail():
    snn, x = random_snn(vgg11_tiny, 1, 16, T=8)
    graph = to_nir(snn, (1, 16, 16))
    graph.nodes['features.2'].v_threshold *= 3                 # a wrong threshold changes the logits
    with torch.no_grad(): assert not torch.allclose(from_nir(graph)(x), snn(x))


def test_fold_bn_exact_and_keeps_zeros():
    snn, x = random_snn(vgg11_tiny, 1, 16)
    conv, bn = snn.features[0], snn.features[1]
    w, b = fold_bn(conv, bn)
    assert torch.all(w[~conv.mask] == 0) and int((w != 0).sum()) == conv.kept
    with torch.no_grad():
        torch.testing.assert_close(nn.functional.conv2d(x, w, b, padding=1), bn(conv(x)), rtol=1e-12, atol=1e-12)


def test_spike_condition():
    g = nir.NIRGraph.from_list(nir.Affine(weight=np.array([[0.5]]), bias=np.zeros(1)),
                               nir.IF(r=np.ones(1), v_threshold=np.ones(1), v_reset=np.zeros(1)))
    one = torch.ones(1, 1, dtype=torch.float64)
    assert from_nir(g, T=4, strict=False)(one).item() == 0.5     # ours: v >= 1 at steps 2 and 4
    assert from_nir(g, T=4)(one).item() == 0.25                  # NIR's v > 1: step 3 only


def test_bad_input():
    snn, _ = random_snn(vgg11_tiny, 1, 16, T=4)
    with pytest.raises(ValueError, match='T=0'): to_nir(snn.set_T(0), (1, 16, 16))
    snn.set_T(4)
    with pytest.raises(ValueError, match='exports the VGG models'): to_nir(WideResNet(10, 1, 5, 2, 0.25).set_T(4), (2, 8, 8))
    with pytest.raises(ValueError, match="mode 'relu'"): to_nir(snn.set_mode('relu'), (1, 16, 16))
    snn.set_mode('pwl:1')
    with pytest.raises(ValueError, match='partial'): to_nir(snn, (1, 48, 48))
    with pytest.raises(ValueError, match='C=1'): to_nir(snn, (1, 16))
    snn.features[2].tau = 0.9
    with pytest.raises(ValueError, match='tau=0.9'): to_nir(snn, (1, 16, 16))
    snn.features[2].tau = 1.0
    with pytest.raises(ValueError, match="reset='soft'"): to_nir(set_reset(snn, 'soft'), (1, 16, 16))
    set_reset(snn, 'hard')
    graph = to_nir(snn, (1, 16, 16))
    with pytest.raises(ValueError, match=r'T \(time steps\) must be an integer in 1\.\.inf, got 0'): from_nir(graph, T=0)
    graph.metadata = {}
    with pytest.raises(ValueError, match='needs T'): from_nir(graph)
    lif = nir.NIRGraph.from_list(nir.LIF(tau=np.ones(1), r=np.ones(1), v_leak=np.zeros(1), v_threshold=np.ones(1)))
    with pytest.raises(ValueError, match='node types'): from_nir(lif, T=2)
    with mock.patch.dict(sys.modules, {'nir': None}):
        with pytest.raises(ImportError, match=r'pip install robustsparsesnn\[nir\]'): to_nir(snn, (1, 16, 16))


def one_neuron_graph(**metadata):
    "Affine(0.5) into one IF neuron, with the given metadata."
    g = nir.NIRGraph.from_list(nir.Affine(weight=np.array([[0.5]]), bias=np.zeros(1)),
                               nir.IF(r=np.ones(1), v_threshold=np.ones(1), v_reset=np.zeros(1)))
    g.metadata = metadata
    return g


@pytest.mark.parametrize('call, msg', [
    (lambda: from_nir(one_neuron_graph(), T=-1), 'T (time steps) must be an integer in 1..inf, got -1'),
    (lambda: from_nir(one_neuron_graph(), T=2.5), 'T (time steps) must be an integer in 1..inf, got 2.5'),
    (lambda: from_nir(one_neuron_graph(), T=4.0), 'T (time steps) must be an integer in 1..inf, got 4.0'),
    (lambda: from_nir(one_neuron_graph(), T=True), 'T (time steps) must be an integer in 1..inf, got True'),
    (lambda: from_nir(one_neuron_graph(), T='4'), "T (time steps) must be an integer in 1..inf, got '4'"),
    (lambda: from_nir(one_neuron_graph(T=2.5)), 'T (time steps) must be an integer in 1..inf, got 2.5'),
])
def test_from_nir_refuses_bad_T(call, msg):
    with pytest.raises(ValueError) as e: call()
    assert msg in str(e.value)


def test_from_nir_takes_T_from_a_file(tmp_path):
    "The metadata's T comes back from HDF5 as a NumPy integer, which counts as an integer."
    nir.write(tmp_path / 'g.nir', one_neuron_graph(T=4))
    back = nir.read(tmp_path / 'g.nir')
    assert from_nir(back, strict=False).T == 4
