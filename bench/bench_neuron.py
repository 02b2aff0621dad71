"""The IF neuron three ways: `IFSpike` with its compiled CPU kernel, `IFSpike` with its torch loop (the same autograd
Function, `cpu_kernel(False)`), and the plain per-step autograd loop (`if_reference`).

One spiking layer of batch 64, 64 channels, 16x16, T=8 (input (T*B, 64, 16, 16) = (512, 64, 16, 16)),
forward + backward of sum(spikes * g) (and, for inference, forward only under no_grad), piecewise-linear surrogate (g=1), IF (tau=1).

Time: median wall-clock of `--repeats` runs after one warm-up (no profiler attached).
Peak memory on CPU: torch profiler memory (profile_memory=True), peak of the running sum of the tensor
allocations and frees recorded during one forward+backward (tracemalloc cannot see torch's CPU allocator);
the input tensor and the upstream gradient exist before and are not counted. On CUDA:
torch.cuda.max_memory_allocated over the same region, minus what was allocated before it.

    .venv/bin/python bench/bench_neuron.py [--device cpu|cuda] [--repeats 5] [--T 8]
"""
import argparse, statistics, time

import torch
from _memory import profiler_peak

from robustsparsesnn.kernel import cpu_kernel
from robustsparsesnn.neurons import if_reference, if_spikes


def torch_loop(*args):
    "`if_spikes` with the compiled kernel switched off (the choice is made in the forward; the backward follows it)."
    with cpu_kernel(False): return if_spikes(*args)


def step(f, x, vth, g, mode, backward=True):
    x.grad = vth.grad = None
    s = f(x, vth, 1.0, mode)
    if backward: (s * g).sum().backward()
    return s


def sync(device):
    if device.type == 'cuda': torch.cuda.synchronize()


def wall_time(f, x, vth, g, mode, repeats, device, backward=True):
    step(f, x, vth, g, mode, backward); sync(device)
    times = []
    for _ in range(repeats):
        t = time.perf_counter(); step(f, x, vth, g, mode, backward); sync(device); times.append(time.perf_counter() - t)
    return statistics.median(times)


def peak_memory(f, x, vth, g, mode, device, backward=True):
    "Peak bytes allocated during one forward+backward, above what existed before."
    x.grad = vth.grad = None
    if device.type == 'cuda':
        torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        step(f, x, vth, g, mode, backward); torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated(device) - base
    return profiler_peak(lambda: step(f, x, vth, g, mode, backward))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    ap.add_argument('--repeats', type=int, default=5)
    ap.add_argument('--T', type=int, default=8)
    ap.add_argument('--batch', type=int, default=64)
    ap.add_argument('--mode', default='pwl:1')
    a = ap.parse_args()
    device = torch.device(a.device)
    torch.manual_seed(0)
    shape = (a.T, a.batch, 64, 16, 16)
    x = (torch.randn(shape, device=device) * 0.5 + 0.3).requires_grad_()
    vth = torch.tensor(1.0, device=device, requires_grad=True)
    g = torch.randn(shape, device=device)
    print(f"IF layer {a.batch}x64x16x16, T={a.T}, mode {a.mode}, forward+backward, device {device} "
          f"(torch {torch.__version__}, {torch.get_num_threads()} threads)")
    # same spikes, same gradients
    s1 = step(if_spikes, x, vth, g, a.mode).detach(); gx1, gt1 = x.grad.clone(), vth.grad.clone()
    s2 = step(if_reference, x, vth, g, a.mode).detach(); gx2, gt2 = x.grad.clone(), vth.grad.clone()
    print(f"  spikes identical: {torch.equal(s1, s2)}   max |dL/dx diff|: {(gx1 - gx2).abs().max().item():.2e}   "
          f"|dL/dV_th| {gt1.item():.6g} vs {gt2.item():.6g} (rel. diff {abs(gt1 - gt2).item() / abs(gt2).item():.1e})")
    del s1, s2, gx1, gx2
    mem_how = 'torch.cuda.max_memory_allocated' if device.type == 'cuda' else 'torch profiler (profile_memory=True)'
    print(f"  {'variant':<36}{'time (ms)':>12}{'peak memory (MiB)':>20}   memory: {mem_how}")
    for name, f in (('IFSpike, compiled kernel', if_spikes), ('IFSpike, torch loop', torch_loop),
                    ('plain per-step autograd', if_reference)):
        t = wall_time(f, x, vth, g, a.mode, a.repeats, device)
        m = peak_memory(f, x, vth, g, a.mode, device)
        print(f"  {name:<36}{t * 1e3:>12.1f}{m / 2**20:>20.1f}")
    for name, f in (('kernel, forward only', if_spikes), ('torch loop, forward only', torch_loop),
                    ('plain loop, forward only', if_reference)):
        with torch.no_grad():
            t = wall_time(lambda *args, f=f: f(*args).sum(), x, vth, g, a.mode, a.repeats, device, backward=False)
            m = peak_memory(lambda *args, f=f: f(*args).sum(), x, vth, g, a.mode, device, backward=False)
        print(f"  {name + ' (no_grad)':<36}{t * 1e3:>12.1f}{m / 2**20:>20.1f}")
    print(f"  (input tensor alone: {x.numel() * x.element_size() / 2**20:.1f} MiB)")


if __name__ == '__main__':
    main()
