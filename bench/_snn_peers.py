"""The VGG-16 SNN of `robustsparsesnn.models.vgg16` built with SpikingJelly and with snnTorch, one training step for each
of the three, and the helpers the peer benchmarks share (interleaved timing, page faults, the glibc allocator switch).

Same architecture in all three: 13 conv3x3 (bias-free) + BatchNorm2d + IF, AvgPool2d(2, ceil_mode) after each block,
AdaptiveAvgPool2d(2), Flatten, Linear(c*4, 256w)-IF-Linear(256w, 256w)-IF-Linear(256w, classes); IF = integrate and fire
(no leak), threshold 1, hard reset to 0 with the reset detached, piecewise-linear (triangular) surrogate max(0, 1 - |u|);
direct coding (the same image at every step); logits = time mean of the last Linear's output.
"""
import resource, statistics, time

import torch
import torch.nn.functional as F
from torch import nn

from robustsparsesnn.models import VGG_BLOCKS, vgg16
from robustsparsesnn.snn_finetune import training_layout

try:
    from spikingjelly.activation_based import functional as sj_functional, layer as sj_layer, neuron as sj_neuron, \
        surrogate as sj_surrogate
    import spikingjelly
    SJ_VERSION = getattr(spikingjelly, '__version__', None)
    if SJ_VERSION is None:
        from importlib.metadata import version; SJ_VERSION = version('spikingjelly')
except ImportError as e: sj_layer, SJ_VERSION, SJ_ERROR = None, None, str(e)

try:
    import snntorch as snn
    from snntorch import surrogate as st_surrogate, utils as st_utils
    ST_VERSION = snn.__version__
except ImportError as e: snn, ST_VERSION, ST_ERROR = None, None, str(e)

INSTALL = ".venv/bin/python -m pip install --no-deps spikingjelly==2.0.0 snntorch==1.0.0 loguru==0.7.3"


def _ch(c, width): return max(1, round(c * width))


def _vgg16_layers(width, in_channels, num_classes, conv, bn, pool, apool, flat, linear, ifnode):
    "The layer list of robustsparsesnn's VGG-16 from one framework's layer constructors."
    layers, c_in = [], in_channels
    for block in VGG_BLOCKS['vgg16']:
        for c in block:
            c = _ch(c, width)
            layers += [conv(c_in, c, 3, padding=1, bias=False), bn(c), ifnode()]
            c_in = c
        layers.append(pool(2, ceil_mode=True))
    h = _ch(256, width)
    return layers + [apool(2), flat(), linear(c_in * 4, h), ifnode(), linear(h, h), ifnode(), linear(h, num_classes)]


# ---- ours
class Ours:
    name = 'robustsparsesnn'
    def __init__(self, width, T=8, num_classes=10, in_channels=3):
        net = vgg16(num_classes=num_classes, in_channels=in_channels, width=width).set_T(T).set_mode('pwl:1')
        self.T, self.net = T, training_layout(net)     # the layout snn_finetune.finetune trains in (channels-last on a CPU)
    def logits(self, x): return self.net(x)        # direct coding and the time mean are inside the model


# ---- SpikingJelly (activation_based, multi-step mode 'm': time is folded into the batch for conv/BN/pool/linear)
class SpikingJelly:
    name = 'SpikingJelly'
    def __init__(self, width, T=8, num_classes=10, in_channels=3):
        if sj_layer is None: raise ImportError(f"spikingjelly is not installed ({SJ_ERROR}); {INSTALL}")
        # SpikingJelly 2.0 has no `backend=` argument any more: IFNode in 'm' mode dispatches to its registered op
        # (torch.ops.sj_if, a fused multi-step forward and a fused BPTT backward) for the built-in surrogates;
        # PiecewiseQuadratic(alpha=1) has the gradient max(0, 1 - |u|), the same triangle as our 'pwl:1'.
        ifnode = lambda: sj_neuron.IFNode(v_threshold=1., v_reset=0., surrogate_function=sj_surrogate.PiecewiseQuadratic(alpha=1.),
                                          detach_reset=True, step_mode='m')
        self.T = T
        self.net = nn.Sequential(*_vgg16_layers(width, in_channels, num_classes, sj_layer.Conv2d, sj_layer.BatchNorm2d,
                                                sj_layer.AvgPool2d, sj_layer.AdaptiveAvgPool2d, sj_layer.Flatten,
                                                sj_layer.Linear, ifnode))
        sj_functional.set_step_mode(self.net, 'm')
    def logits(self, x):        # the SpikingJelly tutorials' loop: reset, repeat the image T times, mean over time
        sj_functional.reset_net(self.net)
        return self.net(x.unsqueeze(0).repeat(self.T, 1, 1, 1, 1)).mean(0)


# ---- snnTorch (per-step loop over an nn.Sequential with init_hidden=True neurons, as in its convolutional tutorials)
def _triangle(u, grad, spikes):
    "snnTorch custom surrogate: d spike / d u = max(0, 1 - |u|) (u = mem - threshold); the same as our 'pwl:1'."
    return grad * (1 - u.abs()).clamp_min(0)


class SnnTorch:
    name = 'snnTorch'
    def __init__(self, width, T=8, num_classes=10, in_channels=3):
        if snn is None: raise ImportError(f"snntorch is not installed ({ST_ERROR}); {INSTALL}")
        snn.SpikingNeuron.init()    # its neurons register in a class-level list that reset() walks: only this model's
        spike_grad = st_surrogate.custom_surrogate(_triangle)
        # beta=1: no leak (IF); reset_mechanism='zero' with the default reset_delay: the reset signal is detached
        ifnode = lambda: snn.Leaky(beta=1.0, threshold=1.0, reset_mechanism='zero', spike_grad=spike_grad, init_hidden=True)
        self.T = T
        self.net = nn.Sequential(*_vgg16_layers(width, in_channels, num_classes, nn.Conv2d, nn.BatchNorm2d, nn.AvgPool2d,
                                                nn.AdaptiveAvgPool2d, nn.Flatten, nn.Linear, ifnode))
    def logits(self, x):
        st_utils.reset(self.net)
        return torch.stack([self.net(x) for _ in range(self.T)]).mean(0)


class OursWhatIf(Ours):
    """Ours with the two changes that bench/bench_profile.py measures as what-ifs (bench/_whatif.py, applied at run
    time, the package untouched): the first conv + BN once for the T direct-coded copies, and the model and input in
    channels_last."""
    name = 'ours + what-ifs'
    def __init__(self, width, T=8, num_classes=10, in_channels=3):
        super().__init__(width, T, num_classes, in_channels)
        self.net = self.net.to(memory_format=torch.channels_last)
    def logits(self, x):
        from _whatif import dedup_forward
        return dedup_forward(self.net, x.contiguous(memory_format=torch.channels_last))


FRAMEWORKS = {'ours': Ours, 'spikingjelly': SpikingJelly, 'snntorch': SnnTorch, 'ours-whatif': OursWhatIf}


def available(names):
    "The frameworks of `names` that import, and a note for each one that does not."
    ok, notes = [], []
    for n in names:
        if n == 'spikingjelly' and sj_layer is None: notes.append(f"SpikingJelly skipped: {SJ_ERROR} ({INSTALL})")
        elif n == 'snntorch' and snn is None: notes.append(f"snnTorch skipped: {ST_ERROR} ({INSTALL})")
        else: ok.append(n)
    return ok, notes


def version_of(name):
    v = __import__('robustsparsesnn').__version__
    return {'ours': v, 'ours-whatif': v, 'spikingjelly': SJ_VERSION, 'snntorch': ST_VERSION}[name]


def weight_params(net):
    "Parameters of the conv, linear and batch-norm layers (ours also has one trainable threshold per IF layer)."
    return sum(p.numel() for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear, nn.BatchNorm2d))
               for p in m.parameters(recurse=False))


def all_params(net): return sum(p.numel() for p in net.parameters())


@torch.no_grad()
def copy_weights(src, dst):
    "Copy the conv/linear/BN parameters and BN statistics of `src` into `dst` (same layer order)."
    kinds = (nn.Conv2d, nn.Linear, nn.BatchNorm2d)
    a = [m for m in src.modules() if isinstance(m, kinds)]
    b = [m for m in dst.modules() if isinstance(m, kinds)]
    if len(a) != len(b) or any(m.weight.shape != n.weight.shape for m, n in zip(a, b)):
        raise ValueError("the two models' layers differ")
    for m, n in zip(a, b):
        n.weight.copy_(m.weight if not hasattr(m, 'effective_weight') else m.effective_weight())
        if m.bias is not None: n.bias.copy_(m.bias)
        if isinstance(m, nn.BatchNorm2d):
            n.running_mean.copy_(m.running_mean); n.running_var.copy_(m.running_var)


@torch.no_grad()
def warm_batch_norm(net, forward, passes=3, batch=16, seed=0):
    """Give an untrained network BN statistics under which its layers spike in eval mode: reset the running
    statistics and average (momentum None) those of `passes` train-mode forwards `forward(x)` of random images."""
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    saved = [b.momentum for b in bns]
    for b in bns: b.reset_running_stats(); b.momentum = None
    g, training = torch.Generator().manual_seed(seed), net.training
    net.train()
    for _ in range(passes): forward(torch.rand(batch, 3, 32, 32, generator=g))
    for b, m in zip(bns, saved): b.momentum = m
    net.train(training)


class Trainer:
    "One framework's model, an SGD optimizer (lr 0.01, momentum 0.9, wd 1e-4) and its training step (forward, BPTT, update)."
    def __init__(self, name, width, T=8, batch=64, seed=0, channels_last=False):
        torch.manual_seed(seed)
        self.key, self.fw = name, FRAMEWORKS[name](width, T)
        self.net = self.fw.net.train()
        if channels_last: self.net = self.net.to(memory_format=torch.channels_last)
        self.opt = torch.optim.SGD(self.net.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
        g = torch.Generator().manual_seed(seed)
        self.x = torch.rand(batch, 3, 32, 32, generator=g)
        if channels_last: self.x = self.x.contiguous(memory_format=torch.channels_last)
        self.y = torch.randint(0, 10, (batch,), generator=g)

    def step(self, zero=True):
        if zero: self.opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(self.fw.logits(self.x), self.y)
        loss.backward()
        self.opt.step()
        return loss.detach()


def minor_faults(): return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def interleaved(steps, warmup, reps):
    "Warm every step function up, then time them in turns (order rotated every repetition). {key: [(seconds, faults)]}."
    for f in steps.values():
        for _ in range(warmup): f()
    out, keys = {k: [] for k in steps}, list(steps)
    for r in range(reps):
        for k in keys[r % len(keys):] + keys[:r % len(keys)]:
            f0 = minor_faults(); t = time.perf_counter(); steps[k](); dt = time.perf_counter() - t
            out[k].append((dt, minor_faults() - f0))
    return out


def med(xs): return statistics.median(xs)
