"""What-if prototypes for changes inside robustsparsesnn, applied at run time in the benchmark process only (the
package files are not touched): evidence for what such changes would buy. Each one is checked against the package.

- `lean_if`: `neurons.IFSpike` without bool tensors and with fewer memory passes. Forward: h = v + x[t] written
  straight into the saved v(t^-) buffer (`out=`), spikes written as float by `torch.ge(..., out=)`, the hard reset as
  v = h - s*h by one `addcmul` into a reused buffer (3 kernels per step instead of add_, ge to bool, two copies, one of
  them bool -> float, and masked_fill_ with a bool mask, which are slow on the CPU). Backward: the surrogate and
  dL/dV_th computed once over all T (vectorised), then per step a `lt` into a reused float buffer and one in-place
  `addcmul_` (instead of ~12 kernels per step: sub, abs, rsub, clamp_min, div by g^2 = 1, mul, sum, lt to bool, mul,
  add, copy, mul by tau = 1). BPTT surrogates ('pwl', 'rect', 'exp', 'ste'), hard or soft reset; other modes fall back
  to the package's IFSpike.
- `dedup_first_layer`: direct coding feeds the same image at every step, so the first conv and its batch norm see T
  identical copies; they are computed on the B images once and expanded to T*B (train-mode BN statistics of the copies
  are those of the B images, so the result is the same).
"""
import contextlib

import torch

from robustsparsesnn import neurons
from robustsparsesnn.neurons import IFSpike, sim_steps, time_mean


class LeanIFSpike(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, vth, tau, mode, save=True, soft=False):
        spikes, vpre, v = torch.empty_like(x), torch.empty_like(x), torch.empty_like(x[0])
        for t in range(x.shape[0]):
            h = vpre[t]
            if t == 0: h.copy_(x[0])
            else: torch.add(v.mul_(tau) if tau != 1 else v, x[t], out=h)       # Eq. 1, into the saved buffer
            torch.ge(h, vth, out=spikes[t])                                     # Eq. 2, straight to float
            if soft: torch.addcmul(h, spikes[t], vth, value=-1, out=v)          # Eq. 3: v = h - s * V_th
            else: torch.addcmul(h, h, spikes[t], value=-1, out=v)               #        v = h - s * h (exact)
        ctx.tau, ctx.mode, ctx.soft = tau, mode, soft
        if save: ctx.save_for_backward(vpre, vth)
        return spikes

    @staticmethod
    def backward(ctx, g):
        vpre, vth = ctx.saved_tensors
        m, tau = ctx.mode, ctx.tau
        u = torch.sub(vpre, vth)
        if m.name == 'pwl' and m.params[0] == 1: gs = u.abs_().neg_().add_(1).relu_().mul_(g)   # max(0, 1-|u|) g
        else: gs = m.surrogate(u).mul_(g)
        gth = -gs.sum()
        keep = None if ctx.soft else torch.empty_like(vpre[0])
        for t in range(g.shape[0] - 2, -1, -1):      # gx reuses gs: gx[t] = gs[t] + tau * keep[t] * gx[t+1]
            if keep is None: gs[t].add_(gs[t + 1], alpha=tau)
            else:
                torch.lt(vpre[t], vth, out=keep)
                gs[t].addcmul_(gs[t + 1], keep, value=tau)
        return gs, (gth if ctx.needs_input_grad[1] else None), None, None, None, None


_orig_spike = neurons._spike

def _lean_spike(x, vth, tau, mode, soft=False):
    save = torch.is_grad_enabled() and (x.requires_grad or vth.requires_grad)
    if not save or mode.kind != 'bptt': return _orig_spike(x, vth, tau, mode, soft)
    return LeanIFSpike.apply(x, vth, tau, mode, save, soft)


@contextlib.contextmanager
def lean_if():
    "Use `LeanIFSpike` for every IFNeuron inside the block (neurons._spike is swapped and restored)."
    neurons._spike = _lean_spike
    try: yield
    finally: neurons._spike = _orig_spike


def dedup_forward(model, x):
    "`SpikingNet.forward` of a VGG with the first conv + BN computed once on the B images and expanded over T."
    n = sim_steps(model.T, model.mode)
    f = model.features
    y = f[1](f[0](model.normalize(x)))                     # conv1 + BN1 on B images (BN statistics: the same)
    y = y.unsqueeze(0).expand(n, *y.shape).reshape(n * y.shape[0], *y.shape[1:])
    for layer in list(f)[2:]: y = layer(y)
    return time_mean(model.classifier(y), n)


def time_if_layer(shape=(8, 64, 16, 32, 32), mode='pwl:1', reps=5):
    "Median ms of forward (saving for backward) and of forward + backward of one IF layer: package vs lean."
    import statistics, time
    torch.manual_seed(0)
    mode = neurons.parse_mode(mode)
    x = (torch.randn(shape) * 0.6 + 0.3).requires_grad_()
    vth, g = torch.tensor(1.0, requires_grad=True), torch.randn(shape)
    def fwd(f): return f.apply(x, vth, 1.0, mode, True, False)
    def both(f):
        x.grad = vth.grad = None
        fwd(f).backward(g)
    out = {}
    for name, f in (('package IFSpike', IFSpike), ('lean', LeanIFSpike)):
        for what, fn in (('forward', fwd), ('forward+backward', both)):
            fn(f); ts = []
            for _ in range(reps):
                t = time.perf_counter(); fn(f); ts.append(time.perf_counter() - t)
            out[(name, what)] = statistics.median(ts) * 1e3
    return out


def check_lean_if(shape=(8, 16, 8, 16, 16), mode='pwl:1'):
    "Spikes identical, max relative difference of dL/dx and dL/dV_th between the package's IFSpike and LeanIFSpike."
    torch.manual_seed(0)
    mode = neurons.parse_mode(mode)
    x = (torch.randn(shape) * 0.6 + 0.3).requires_grad_()
    vth = torch.tensor(1.0, requires_grad=True)
    g = torch.randn(shape)
    out = []
    for f in (IFSpike, LeanIFSpike):
        x.grad = vth.grad = None
        s = f.apply(x, vth, 1.0, mode, True, False)
        (s * g).sum().backward()
        out.append((s.detach(), x.grad.clone(), vth.grad.clone()))
    (s0, gx0, gt0), (s1, gx1, gt1) = out
    return torch.equal(s0, s1), ((gx0 - gx1).abs().max() / gx0.abs().max()).item(), abs((gt0 - gt1) / gt0).item()
