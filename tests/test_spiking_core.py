"Spiking core: neuron dynamics and gradients (fused vs plain loop), masked layers, models. Property tests over many cases."
import math

import pytest
import torch
from torch import nn
from hypothesis import example, given, settings, strategies as st, HealthCheck

import robustsparsesnn.kernel as K
import robustsparsesnn.neurons as N
from robustsparsesnn.surrogates import ENSEMBLE_MODES, GradKind, parse_mode
from robustsparsesnn.neurons import IFNeuron, if_reference, if_spikes, set_mode, set_T, direct_coding, time_mean
from robustsparsesnn.layers import MaskedConv2d, MaskedLinear, kept_count, prunable_layers, topk_mask
from robustsparsesnn.models import count_neurons, vgg11, vgg16, wrn28_4

BPTT_MODES = [m for m in ENSEMBLE_MODES if parse_mode(m).kind is GradKind.BPTT]
fast = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _run(f, x0, vth0, tau, mode, g, reset='hard'):
    x, vth = x0.clone().requires_grad_(), torch.tensor(vth0, dtype=x0.dtype, requires_grad=True)
    s = f(x, vth, tau, mode, reset=reset)
    (s * g).sum().backward()
    return s.detach(), x.grad, vth.grad


@fast
@given(T=st.integers(1, 8), shape=st.lists(st.integers(1, 5), min_size=1, max_size=3), mode=st.sampled_from(BPTT_MODES),
       tau=st.sampled_from([1.0, 0.9, 0.5]), vth=st.floats(0.05, 2.0), scale=st.floats(0.1, 3.0),
       seed=st.integers(0, 2**16), dtype=st.sampled_from([torch.float32, torch.float64]),
       reset=st.sampled_from(['hard', 'soft']))
def test_fused_equals_plain_loop(T, shape, mode, tau, vth, scale, seed, dtype, reset):
    gen = torch.Generator().manual_seed(seed)
    x0 = (torch.randn(T, *shape, generator=gen) * scale + 0.3 * vth).to(dtype)
    g = torch.randn(T, *shape, generator=gen).to(dtype)
    s1, gx1, gt1 = _run(if_spikes, x0, vth, tau, mode, g, reset)
    s2, gx2, gt2 = _run(if_reference, x0, vth, tau, mode, g, reset)
    assert torch.equal(s1, s2)
    assert set(s1.unique().tolist()) <= {0.0, 1.0}
    torch.testing.assert_close(gx1, gx2, rtol=1e-6, atol=1e-6)
    tol = 1e-5 if dtype == torch.float32 else 1e-10        # dL/dV_th: a float32 sum over every step, in another order
    torch.testing.assert_close(gt1, gt2, rtol=tol, atol=tol)


@pytest.mark.skipif(K.numba is None, reason="numba is not installed: IFSpike runs its torch loop only")
@fast
@given(T=st.integers(1, 6), shape=st.lists(st.integers(1, 9), min_size=1, max_size=4), mode=st.sampled_from(BPTT_MODES),
       tau=st.sampled_from([1.0, 0.5]), vth=st.floats(0.05, 2.0), seed=st.integers(0, 2**16),
       reset=st.sampled_from(['hard', 'soft']), channels_last=st.booleans(), threads=st.sampled_from([1, 2]))
@example(T=4, shape=[3, 8, 8, 9], mode='exp:1,1', tau=1.0, vth=0.13725003858696133, seed=979, reset='hard',
         channels_last=False, threads=1)                      # exp's last bit, carried through the recurrence: 1.2e-7
def test_compiled_kernel_equals_torch_loop(T, shape, mode, tau, vth, seed, reset, channels_last, threads):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(T, *shape, generator=g) * 1.5 + 0.2
    if channels_last and len(shape) == 4:            # (T, B, C, H, W) with each step's (B, C, H, W) channels-last
        x0 = x0.flatten(0, 1).contiguous(memory_format=torch.channels_last).unflatten(0, (T, shape[0]))
    up = torch.randn(T, *shape, generator=g)
    assert K.cpu_kernel().runs(x0, torch.tensor(vth))
    before, block = torch.get_num_threads(), K._BLOCK
    torch.set_num_threads(threads); K._BLOCK = 64       # small ranges, so that small layers split over the threads too
    try: s1, gx1, gt1 = _run(if_spikes, x0, vth, tau, mode, up, reset)
    finally: torch.set_num_threads(before); K._BLOCK = block
    with K.cpu_kernel(False): s2, gx2, gt2 = _run(if_spikes, x0, vth, tau, mode, up, reset)
    assert torch.equal(s1, s2) and s1.stride() == x0.stride()
    if mode.startswith('exp') or (reset == 'soft' and tau != 1):    # a last-bit rounding per step, summed over <= T steps
        torch.testing.assert_close(gx1, gx2, rtol=1e-5, atol=T * 2.4e-7 * (1 + gx2.abs().max().item()))
    else: assert torch.equal(gx1, gx2)
    assert abs(gt1.item() - gt2.item()) <= 1e-6 * (1 + 4 * up.abs().sum().item())   # float32 sums, |surrogate| <= 4


@fast
@given(k=st.integers(1, 40), j=st.integers(1, 16), T=st.integers(1, 40))
def test_if_count_with_hard_reset(k, j, T):
    "Constant input c = k/16, threshold V = j/8 (exact in binary): the neuron fires every ceil(V/c) steps."
    c, V = k / 16, j / 8
    n = int(if_spikes(torch.full((T, 1), c), V).sum())
    assert n == T // math.ceil(V / c)
    assert n <= math.floor(c * T / V)                      # never more than a soft reset would give


@fast
@given(k=st.integers(0, 16), j=st.integers(1, 16), T=st.integers(1, 40))
def test_if_count_with_soft_reset(k, j, T):
    "Constant input c = k/16 <= V = j/8 + 1 (exact in binary): a soft reset fires exactly floor(c T / V) times."
    c, V = k / 16, j / 8 + 1
    assert int(if_spikes(torch.full((T, 1), c), V, reset='soft').sum()) == math.floor(c * T / V)


@fast
@given(T=st.integers(1, 6), n=st.integers(1, 12), vth=st.floats(0.1, 2.0), seed=st.integers(0, 2**16))
def test_rate_modes_match_definitions(T, n, vth, seed):
    gen = torch.Generator().manual_seed(seed)
    x0 = torch.randn(T, n, generator=gen, dtype=torch.float64) + 0.5 * vth
    g = torch.randn(T, n, generator=gen, dtype=torch.float64)
    s, gx, gt = _run(if_spikes, x0, vth, 1.0, 'bptr', g)
    assert torch.equal(s, if_reference(x0, vth).detach())        # exact forward
    want = (g.mean(0) * (s.mean(0) > 0)).expand(T, n)
    torch.testing.assert_close(gx, want)
    assert gt is None
    s, gx, gt = _run(if_spikes, x0, vth, 1.0, 'rga', g)
    m = x0.mean(0); inside = ((m >= 0) & (m <= vth)).double()
    torch.testing.assert_close(gx, (g.mean(0) * inside / vth).expand(T, n))
    torch.testing.assert_close(gt, -(g.sum(0) * inside * m).sum() / vth**2)


def test_rga_equals_autograd_of_clipped_rate():
    "RGA's input gradient is autograd's gradient of clip(mean x / V, 0, 1) repeated over T."
    torch.manual_seed(0)
    x = torch.randn(5, 7, dtype=torch.float64).requires_grad_()
    g = torch.randn(5, 7, dtype=torch.float64)
    (if_spikes(x, 0.8, mode='rga') * g).sum().backward()
    x2 = x.detach().clone().requires_grad_()
    r = (x2.mean(0) / 0.8).clamp(0, 1)
    (r.expand(5, 7) * g).sum().backward()
    torch.testing.assert_close(x.grad, x2.grad)


def test_threshold_floor_and_errors():
    n = IFNeuron(threshold=0.5, floor=0.1)
    with torch.no_grad(): n.threshold.fill_(0.01)
    assert abs(n.vth.item() - 0.1) < 1e-7
    set_T(n, 3)(torch.full((3, 4), 0.06)).sum().backward()
    assert n.threshold.grad.item() != 0                     # straight-through past the floor
    for bad in (0, -1e-3):
        with pytest.raises(ValueError, match=r"threshold floor must be in \(0, inf\)"): IFNeuron(floor=bad)
    with pytest.raises(ValueError, match=r"T \(0 = ANN with ReLU, > 0 = SNN time steps\) must be an integer in 0\.\.inf, got -2"):
        set_T(n, -2)
    with pytest.raises(ValueError, match="unknown surrogate 'tanh'; valid: pwl, exp, rect, ste, bptr, rga, relu"):
        set_mode(n, 'tanh')


# Bad sizes and counts: one ValueError that names the value and what is valid; a fraction is never truncated.
@pytest.mark.parametrize('call, msg', [
    (lambda: set_T(IFNeuron(), 2.5), 'must be an integer in 0..inf, got 2.5'),
    (lambda: set_T(IFNeuron(), 4.0), 'must be an integer in 0..inf, got 4.0'),
    (lambda: set_T(IFNeuron(), True), 'must be an integer in 0..inf, got True'),
    (lambda: IFNeuron(T='4'), "must be an integer in 0..inf, got '4'"),
    (lambda: IFNeuron(floor=float('inf')), 'threshold floor must be finite and in (0, inf), got inf'),
    (lambda: direct_coding(torch.zeros(2, 3), 0), 'T must be an integer in 1..inf, got 0'),
    (lambda: direct_coding(torch.zeros(2, 3), 1.5), 'T must be an integer in 1..inf, got 1.5'),
    (lambda: time_mean(torch.zeros(4, 3), -2), 'T must be an integer in 1..inf, got -2'),
    (lambda: kept_count(0.5, 0), 'n (number of weights) must be an integer in 1..inf, got 0'),
    (lambda: kept_count(0.5, 7.5), 'n (number of weights) must be an integer in 1..inf, got 7.5'),
    (lambda: topk_mask(torch.rand(3, 2), 7), 'k (weights to keep) must be an integer in 0..6, got 7'),
    (lambda: topk_mask(torch.rand(3, 2), -1), 'k (weights to keep) must be an integer in 0..6, got -1'),
    (lambda: vgg11(in_channels=0), 'in_channels must be an integer in 1..inf, got 0'),
    (lambda: vgg16(in_channels=3.0), 'in_channels must be an integer in 1..inf, got 3.0'),
    (lambda: wrn28_4(in_channels=-1), 'in_channels must be an integer in 1..inf, got -1'),
    (lambda: vgg11(num_classes=0), 'num_classes must be an integer in 1..inf, got 0'),
    (lambda: vgg16(num_classes=2.5), 'num_classes must be an integer in 1..inf, got 2.5'),
    (lambda: wrn28_4(num_classes=0), 'num_classes must be an integer in 1..inf, got 0'),
    (lambda: wrn28_4(num_classes=True), 'num_classes must be an integer in 1..inf, got True'),
    (lambda: vgg11(width=float('inf')), 'width must be finite and in (0, inf), got inf'),
    (lambda: wrn28_4(width=float('nan')), 'width must be in (0, inf), got nan'),
    (lambda: vgg16(width=-0.5), 'width must be in (0, inf), got -0.5'),
    (lambda: vgg16(width=1e-3), 'width must be in (0.0078125, inf), got 0.001'),
    (lambda: wrn28_4(width=1 / 32), 'width must be in (0.03125, inf), got 0.03125'),
])
def test_bad_sizes_and_counts(call, msg):
    with pytest.raises(ValueError) as e: call()
    assert msg in str(e.value)


@pytest.mark.parametrize('build, c', [(vgg11, 64), (vgg16, 64), (wrn28_4, 16)])
def test_narrowest_width_gives_every_layer_a_channel(build, c):
    "Just above 0.5 / c the narrowest layer has one channel (round(c w) = 1) and every layer has at least one."
    m = build(in_channels=1, width=0.5 / c * (1 + 1e-6))
    assert min(l.weight.shape[0] for _, l in prunable_layers(m)) == 1


@fast
@given(d=st.floats(0, 1), shape=st.sampled_from([(3, 2, 3, 3), (5, 7), (1, 1, 1, 1), (16, 8)]), seed=st.integers(0, 999))
def test_score_mask_kept_count(d, shape, seed):
    torch.manual_seed(seed)
    layer = MaskedConv2d(shape[1], shape[0], shape[2]) if len(shape) == 4 else MaskedLinear(shape[1], shape[0])
    layer.enable_scores(d)
    n = layer.weight.numel()
    k = max(1, round(d * n))
    assert kept_count(d, n) == k == layer.kept
    m = layer.mask_in_use()
    assert int(m.sum()) == k
    # the kept scores are the largest
    s = layer.scores.detach().abs().flatten(); mf = m.flatten()
    if 0 < k < n: assert s[mf].min() >= s[~mf].max()
    assert int((layer.effective_weight() != 0).sum()) == int((layer.weight * m != 0).sum())


def test_topk_ties_are_deterministic():
    s = torch.zeros(100)
    m = topk_mask(s, 10)
    assert m[:10].all() and not m[10:].any()
    assert torch.equal(topk_mask(s, 10), m)


def test_masked_state_dict_round_trip_and_pruned_stay_zero():
    torch.manual_seed(0)
    a = vgg11(width=0.125)
    for _, layer in prunable_layers(a):
        layer.mask.copy_(torch.rand_like(layer.weight) > 0.7)
    b = vgg11(width=0.125); b.load_state_dict(a.state_dict())
    x = torch.rand(3, 3, 16, 16)
    a.eval(); b.eval()
    assert torch.equal(a(x), b(x))
    opt = torch.optim.SGD(a.parameters(), lr=0.1, momentum=0.9)
    a.train(); a(x).sum().backward(); opt.step()
    for _, layer in prunable_layers(a):
        assert layer.effective_weight()[~layer.mask].abs().sum() == 0
        assert layer.weight.grad[~layer.mask].abs().sum() == 0


@settings(max_examples=10, deadline=None)
@given(T=st.integers(1, 5), B=st.integers(2, 4), seed=st.integers(0, 999))
def test_batchnorm_over_batch_and_time(T, B, seed):
    torch.manual_seed(seed)
    o = torch.randn(T, B, 3, 4, 4) * torch.rand(T, 1, 1, 1, 1) * 3
    bn = nn.BatchNorm2d(3)
    y = bn(o.reshape(T * B, 3, 4, 4)).view_as(o)
    mu, var = o.mean((0, 1, 3, 4), keepdim=True), o.var((0, 1, 3, 4), unbiased=False, keepdim=True)
    torch.testing.assert_close(y, (o - mu) / (var + bn.eps).sqrt(), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(bn.running_mean, 0.1 * mu.flatten())


def test_neuron_counts():
    m11, m16, w = vgg11(), vgg16(), wrn28_4()
    assert count_neurons(m16, (3, 32, 32)) == 276_992
    assert count_neurons(m16, (3, 64, 64)) == 4 * 276_480 + 512     # TinyImageNet size
    assert count_neurons(m11, (3, 32, 32)) == 152_064              # 151,552 conv + 512 head
    assert count_neurons(w, (3, 32, 32)) == 933_888
    assert [len(list(prunable_layers(m))) for m in (m11, m16, w)] == [11, 16, 29]


@pytest.mark.parametrize('make', [lambda: vgg16(width=0.125), lambda: wrn28_4(width=0.0625)])
def test_stateless_across_calls_and_batch_sizes(make):
    torch.manual_seed(0)
    m = make().set_T(3)
    x = torch.rand(2, 3, 32, 32)
    for train in (False, True):
        m.train(train)
        with torch.no_grad():
            y1 = m(x); m(torch.rand(5, 3, 32, 32)); m(torch.rand(7, 3, 16, 16)); y2 = m(x)
        assert torch.equal(y1, y2)


def test_vgg16_T0_equals_handbuilt_torch():
    torch.manual_seed(0)
    m = vgg16(num_classes=4, width=0.125).eval()
    cfg = [[8, 8], [16, 16], [32, 32, 32], [64, 64, 64], [64, 64, 64]]
    layers, c_in = [], 3
    for block in cfg:
        for c in block:
            layers += [nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU()]; c_in = c
        layers.append(nn.AvgPool2d(2))
    ref = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(256, 32), nn.ReLU(),
                        nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 4)).eval()
    kinds = (nn.Conv2d, nn.Linear, nn.BatchNorm2d)
    src, dst = [x for x in m.modules() if isinstance(x, kinds)], [x for x in ref.modules() if isinstance(x, kinds)]
    for p, q in zip(src, dst, strict=True):
        if isinstance(p, nn.BatchNorm2d):
            p.running_mean.uniform_(-0.2, 0.2); p.running_var.uniform_(0.5, 2)
        q.load_state_dict({k: v for k, v in p.state_dict().items() if k in q.state_dict()})
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad(): torch.testing.assert_close(m(x), ref(x), rtol=1e-5, atol=1e-6)


def test_snn_logits_are_time_mean_and_T_switch():
    torch.manual_seed(0)
    m = wrn28_4(width=0.0625, num_classes=3).eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        m.set_T(4)
        z = m.normalize(x)
        y = m.body(direct_coding(z, 4))
        torch.testing.assert_close(m(x), time_mean(y, 4))
        assert all(n.T == 4 for n in m.modules() if isinstance(n, IFNeuron))
        m.set_T(0)
        assert all(n.T == 0 for n in m.modules() if isinstance(n, IFNeuron))
    with pytest.raises(ValueError, match=r"expected images of shape \(B, 3, H, W\)"): m(torch.rand(2, 1, 32, 32))


def test_model_gradient_fused_equals_reference_loop(monkeypatch):
    "The whole SNN's input gradient with the fused neuron equals the one with the plain per-step loop."
    torch.manual_seed(0)
    m = vgg11(width=0.125, num_classes=3).set_T(3).eval()
    for n in m.modules():
        if isinstance(n, IFNeuron): n.threshold.data.fill_(0.1)
    x = torch.rand(2, 3, 16, 16, dtype=torch.float64)
    m.double()
    grads = []
    for patch in (False, True):
        if patch:
            monkeypatch.setattr(N.IFSpike, 'apply', staticmethod(lambda x, vth, tau, mode, save=True, soft=False:
                                                N.if_reference(x, vth, tau, mode, reset='soft' if soft else 'hard')))
        xa = x.clone().requires_grad_()
        m.zero_grad(); m.set_mode('pwl:1')(xa).logsumexp(1).sum().backward()
        grads.append((xa.grad, [n.threshold.grad.clone() for n in m.modules() if isinstance(n, IFNeuron)]))
    torch.testing.assert_close(grads[0][0], grads[1][0], rtol=1e-9, atol=1e-9)
    for a, b in zip(grads[0][1], grads[1][1]): torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)
    assert grads[0][0].abs().sum() > 0
