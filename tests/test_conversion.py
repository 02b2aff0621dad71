"Calibration: the streaming methods equal the straightforward reference; the streamed percentile equals kthvalue."
import copy

import pytest
import torch
from hypothesis import given, settings, strategies as st

from robustsparsesnn.conversion import (percentile, percentile_reference, calibrate_thresholds, calibration_batches,
                                        convert, nearest_rank, pack_spikes, unpack_spikes)
from robustsparsesnn.layers import prunable_layers
from robustsparsesnn.models import vgg11, vgg16, WideResNet


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 3000), rho=st.floats(0.01, 100), chunk=st.integers(1, 500), seed=st.integers(0, 10**6),
       ties=st.booleans())
def test_streamed_percentile_is_exact(n, rho, chunk, seed, ties):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, generator=g)
    if ties: x = x.round()
    assert percentile(x, rho, chunk=chunk) == percentile_reference(x, rho)


@settings(max_examples=30, deadline=None)
@given(shape=st.lists(st.integers(1, 9), min_size=1, max_size=4), p=st.floats(0, 1), seed=st.integers(0, 1000))
def test_pack_roundtrip(shape, p, seed):
    s = torch.rand(shape, generator=torch.Generator().manual_seed(seed)) < p
    assert torch.equal(unpack_spikes(pack_spikes(s), torch.bool), s)


def _sparse(model, density, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, l in prunable_layers(model):
            l.mask.copy_(torch.rand(l.weight.shape, generator=g) < density); l.weight.mul_(l.mask)
    return model


@pytest.mark.parametrize('make,T_c,rho', [
    (lambda: vgg16(10, 3, width=1 / 16), 12, 99.7),
    (lambda: vgg11(10, 1, width=0.125), 7, 90.0),
    (lambda: WideResNet(depth=10, widen=1, num_classes=10, in_channels=1, width=0.5), 9, 99.7)])
def test_methods_equal_reference(make, T_c, rho):
    torch.manual_seed(0)
    m = _sparse(make(), 0.3, 0)
    c = m.normalize.in_channels
    xs = [torch.rand(6, c, 16, 16) for _ in range(3)]
    ref = calibrate_thresholds(copy.deepcopy(m), xs, T_c=T_c, rho=rho, method='reference')
    for method in ('auto', 'truncate') + (('chain',) if hasattr(m, 'features') else ()):
        assert calibrate_thresholds(copy.deepcopy(m), xs, T_c=T_c, rho=rho, method=method) == ref, method


def test_earlier_layers_spike_during_calibration():
    "Layer 2's threshold depends on layer 1's: changing the percentile of layer 1 changes what layer 2 sees."
    torch.manual_seed(0)
    m = vgg11(10, 1, width=0.125)
    xs = [torch.rand(8, 1, 16, 16)]
    a = calibrate_thresholds(copy.deepcopy(m), xs, T_c=10, rho=99.7)['raw']
    b = calibrate_thresholds(copy.deepcopy(m), xs, T_c=10, rho=50.0)['raw']
    names = list(a)
    assert a[names[0]] != b[names[0]] and a[names[1]] != b[names[1]]


def test_convert_bad_input():
    m = vgg11(10, 1, width=0.125)
    x = torch.rand(8, 1, 16, 16)
    for kw, msg in [(dict(T_c=0), 'T_c'), (dict(T_c=2.5), 'T_c'), (dict(rho=0), 'rho'), (dict(rho=101), 'rho'),
                    (dict(lam=0), 'lambda'), (dict(T=0), r'T \(SNN time steps\) must'), (dict(method='fast'), 'calibration method')]:
        with pytest.raises(ValueError, match=msg): convert(m, x, n_batches=1, batch_size=8, **kw)
    with pytest.raises(ValueError, match='do not match'):
        convert(vgg11(10, 1, width=0.25).state_dict(), x, snn=m, n_batches=1, batch_size=8)
    with pytest.raises(ValueError, match='do not match'):
        convert(vgg11(100, 1, width=0.125), x, snn=m, n_batches=1, batch_size=8)


X8 = torch.rand(8, 1, 16, 16)


# Counts are integers in their range, never truncated; checked before the model is copied or run.
@pytest.mark.parametrize('call, msg', [
    (lambda: convert(vgg11(10, 1, width=0.125), X8, T=2.5), 'T (SNN time steps) must be an integer in 1..inf, got 2.5'),
    (lambda: convert(vgg11(10, 1, width=0.125), X8, T=8.0), 'T (SNN time steps) must be an integer in 1..inf, got 8.0'),
    (lambda: convert(vgg11(10, 1, width=0.125), X8, T=-4), 'T (SNN time steps) must be an integer in 1..inf, got -4'),
    (lambda: convert(vgg11(10, 1, width=0.125), X8, T_c=-1), 'T_c (calibration time steps) must be an integer in 1..inf, got -1'),
    (lambda: convert(vgg11(10, 1, width=0.125), X8, T_c=True), 'T_c (calibration time steps) must be an integer in 1..inf, got True'),
    (lambda: convert(vgg11(10, 1, width=0.125), X8, n_batches=0), 'n_batches must be an integer in 1..inf, got 0'),
    (lambda: convert(vgg11(10, 1, width=0.125), X8, n_batches=1, batch_size=7.5), 'batch_size must be an integer in 1..inf, got 7.5'),
    (lambda: calibration_batches(X8, 2, 0), 'batch_size must be an integer in 1..inf, got 0'),
    (lambda: calibration_batches(X8, -1, 4), 'n_batches must be an integer in 1..inf, got -1'),
    (lambda: calibration_batches(X8, 2.0, 4), 'n_batches must be an integer in 1..inf, got 2.0'),
    (lambda: nearest_rank(0, 50), 'n (number of values) must be an integer in 1..inf, got 0'),
    (lambda: nearest_rank(10, 0), 'rho (percentile) must be in (0, 100], got 0'),
    (lambda: percentile(X8, 99.7, chunk=0), 'chunk must be an integer in 1..inf, got 0'),
    (lambda: percentile(X8, float('nan')), 'rho (percentile) must be in (0, 100], got nan'),
])
def test_bad_counts(call, msg):
    with pytest.raises(ValueError) as e: call()
    assert msg in str(e.value)
