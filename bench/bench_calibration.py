"""Threshold calibration (Algorithm 1, lines 4-16) of VGG-16 (width 0.25) with the paper's defaults:
T_c = 100 direct-coded steps, 10 batches of 64 images, 32x32x3 inputs, rho = 99.7, lambda = 0.3.

`chain` (the default for VGG) runs each layer twice per batch and caches only the last layer's spikes, bit-packed;
`truncate` runs the network up to each layer once per layer (quadratic in depth, like the reference code);
`reference` is the straightforward version (full forward per layer, every batch's pre-activations stored).
First, on a tiny VGG-16 (width 1/16, 16x16 inputs, T_c = 10, 3 batches of 8), the three give identical thresholds.

Time: wall-clock of one calibration (no profiler attached). Peak memory: on CPU, the peak resident set size of the
process during the calibration minus the resident size before it (getrusage / /proc/self/statm; it includes
allocator slack, so it is an upper bound of the tensors alive); with --profiler also the torch profiler's peak of
the running sum of tensor allocations (as bench/bench_neuron.py; slower). On CUDA: torch.cuda.max_memory_allocated.

    .venv/bin/python bench/bench_calibration.py [--method chain] [--device cpu] [--profiler] [--T-c 100]
"""
import argparse, copy, os, resource, time

import torch
from _memory import profiler_peak

from robustsparsesnn.models import vgg16
from robustsparsesnn.neurons import spiking_neurons
from robustsparsesnn.conversion import calibrate_thresholds


def rss_now():
    with open('/proc/self/statm') as f: return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')


def rss_peak(): return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    ap.add_argument('--method', default='chain', choices=['chain', 'truncate', 'reference'])
    ap.add_argument('--T-c', type=int, default=100)
    ap.add_argument('--batches', type=int, default=10)
    ap.add_argument('--batch-size', type=int, default=64)
    ap.add_argument('--width', type=float, default=0.25)
    ap.add_argument('--profiler', action='store_true', help='also measure the torch profiler peak (a second run)')
    ap.add_argument('--threads', type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    dev = torch.device(a.device)

    torch.manual_seed(0)
    tiny = vgg16(10, 3, width=1 / 16).eval()
    xs = [torch.rand(8, 3, 16, 16) for _ in range(3)]
    th = {m: calibrate_thresholds(copy.deepcopy(tiny), xs, T_c=10, method=m) for m in ('chain', 'truncate', 'reference')}
    print(f"tiny VGG-16 (width 1/16, 16x16, T_c=10, 3 batches of 8): chain == reference: {th['chain'] == th['reference']}, "
          f"truncate == reference: {th['truncate'] == th['reference']} ({len(th['chain']) - 1} thresholds)")

    model = vgg16(10, 3, width=a.width).to(dev).eval()
    xs = [torch.rand(a.batch_size, 3, 32, 32, device=dev) for _ in range(a.batches)]
    L = len(list(spiking_neurons(model)))
    evals = dict(chain=2 * L, truncate=L * (L + 1) // 2, reference=L * (L + 1) // 2 + L * (L - 1) // 2)[a.method]
    print(f"VGG-16 width {a.width}: {L} spiking layers, T_c={a.T_c}, {a.batches} batches of {a.batch_size}, 32x32x3, "
          f"method {a.method} ({evals} layer evaluations per batch; device {dev}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__})")
    if dev.type == 'cuda': torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats(dev); base = torch.cuda.memory_allocated(dev)
    before, peak_before = rss_now(), rss_peak()
    t = time.perf_counter()
    out = calibrate_thresholds(model, xs, T_c=a.T_c, method=a.method)
    if dev.type == 'cuda': torch.cuda.synchronize()
    secs = time.perf_counter() - t
    if dev.type == 'cuda': mem, how = torch.cuda.max_memory_allocated(dev) - base, 'torch.cuda.max_memory_allocated'
    else:
        mem, how = rss_peak() - before, 'peak RSS - RSS before'
        if rss_peak() <= peak_before: how += ' (lower bound: the process peaked earlier)'
    print(f"  time: {secs:.1f} s   peak memory: {mem / 2**20:.0f} MiB ({how})")
    if a.profiler and dev.type == 'cpu':
        m2 = copy.deepcopy(model)
        pk = profiler_peak(lambda: calibrate_thresholds(m2, xs, T_c=a.T_c, method=a.method))
        print(f"  torch profiler peak of live tensor allocations: {pk / 2**20:.0f} MiB")
    act = a.T_c * a.batch_size * (round(64 * a.width)) * 32 * 32 * 4
    print(f"  for scale: one batch's first-layer pre-activations over T_c (float32): {act / 2**20:.0f} MiB; "
          f"all {a.batches} batches: {a.batches * act / 2**20:.0f} MiB; packed spikes of that layer for all batches: "
          f"{a.batches * act / 32 / 2**20:.0f} MiB")
    print("  thresholds:", ', '.join(f"{v:.3g}" for k, v in out.items() if k != 'raw'))


if __name__ == '__main__':
    main()
