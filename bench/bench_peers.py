"""SNN training step side by side: robustsparsesnn vs SpikingJelly vs snnTorch, the same VGG-16, in one run.

One step = forward over T = 8 direct-coded steps + cross entropy on the time-mean logits + BPTT + SGD update
(lr 0.01, momentum 0.9, weight decay 1e-4), batch 64 of 32x32x3 images, 10 classes, float32, CPU, the same thread count
for all. Ours: `vgg16(10, 3, width).set_T(8).set_mode('pwl:1')` in train mode. The peers build the same layers
(bench/_snn_peers.py): SpikingJelly's activation_based layers in multi-step mode 'm' with IFNode(v_threshold=1,
v_reset=0, PiecewiseQuadratic(alpha=1) = the triangle max(0, 1-|u|), detach_reset=True); snnTorch's
Leaky(beta=1, threshold=1, reset_mechanism='zero', custom triangular surrogate, init_hidden=True) in an
nn.Sequential called once per time step. First a check that the three compute the same function (our weights
copied into the peers, eval mode: logits and a weight gradient compared), then the parameter counts.
A fourth row, 'ours + what-ifs', is NOT the package: our model with bench/_whatif.py's prototype of a change to
robustsparsesnn applied at run time (the first conv + BN computed once for the T identical direct-coded copies), in
channels_last, as evidence of what those changes would buy in the same run
(leave it out with --frameworks ours spikingjelly snntorch).

Time: the steps of the frameworks run interleaved (the order rotates every repetition) after the warm-up steps, so
that load from other processes hits all of them alike; median seconds per step, images/s = batch / median.
Minor page faults per step come from getrusage. Peak memory: bench/_memory.py's profiler peak (running sum of the
tensor allocations and frees) over one step after zero_grad(set_to_none=True); it does not depend on the allocator.

Allocator phases (--malloc): 'default' is glibc as it comes; 'tuned' then calls mallopt(M_MMAP_MAX=0,
M_TRIM_THRESHOLD=2 GiB) in the same process (as MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=2147483647 would), so
large tensors are reused instead of being mmap'd, page-faulted and unmapped at every allocation; 'both' runs the
default phase and then the tuned one (the tuned phase re-uses the default phase's memory numbers).

    nice -n 5 .venv/bin/python bench/bench_peers.py [--widths 0.25 1.0] [--reps 10 3] [--warmup 2 2] [--threads 1] \
        [--malloc both|default|tuned] [--channels-last] [--frameworks ours spikingjelly snntorch ours-whatif]

The peers: .venv/bin/python -m pip install --no-deps spikingjelly==2.0.0 snntorch==1.0.0 loguru==0.7.3
(the `peers` extra of pyproject.toml; --no-deps because spikingjelly's declared dependencies pull torchaudio and
tensorboard, which these benchmarks do not use). A framework that is not installed is skipped with a note.
"""
import argparse, datetime, os, platform
os.environ.setdefault('KINETO_LOG_LEVEL', '5')

import torch
import torch.nn.functional as F
from _memory import profiler_peak
from _snn_peers import (FRAMEWORKS, Trainer, all_params, available, copy_weights, interleaved, keep_freed_memory, med,
                        version_of, warm_batch_norm, weight_params)
from robustsparsesnn.neurons import spiking_neurons

LABEL = {'ours': 'robustsparsesnn', 'spikingjelly': 'SpikingJelly', 'snntorch': 'snnTorch', 'ours-whatif': 'ours + what-ifs'}
PEERS = ('spikingjelly', 'snntorch')


def machine():
    cpu = next((l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name')), platform.processor())
    return (f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.backends.cpu.get_cpu_capability()}), "
            f"python {platform.python_version()}, load average {os.getloadavg()[0]:.2f}")


def check_same_function(names, width=0.25, T=8, n=4):
    "Our weights (BN statistics from a few train-mode passes) copied into the peers; eval mode; logits and dL/dW compared."
    torch.manual_seed(0)
    ms = {k: FRAMEWORKS[k](width, T) for k in names}
    x, y = torch.rand(n, 3, 32, 32), torch.randint(0, 10, (n,))
    warm_batch_norm(ms['ours'].net, ms['ours'].logits)
    rates = []
    hooks = [l.register_forward_hook(lambda m, i, o: rates.append(o.float().mean().item()))
             for _, l in spiking_neurons(ms['ours'].net)]
    for k in names:
        if k != 'ours': copy_weights(ms['ours'].net, ms[k].net)
    out = {}
    for k, m in ms.items():
        m.net.eval().zero_grad()
        z = m.logits(x); F.cross_entropy(z, y).backward()
        convs = [l for l in m.net.modules() if isinstance(l, torch.nn.Conv2d)]
        out[k] = z.detach(), convs[1].weight.grad.clone(), convs[-1].weight.grad.clone()
        if k == 'ours':
            for h in hooks: h.remove()
    z0, g0, h0 = out['ours']
    print(f"same function (width {width}, T={T}, {n} images, eval mode, our weights copied, BN statistics of 3 "
          f"random train-mode batches; our firing rates per IF layer {min(rates):.3f}-{max(rates):.3f}):")
    for k in names:
        if k == 'ours': continue
        z, g, h = out[k]
        rel = lambda a, b: ((a - b).norm() / b.norm().clamp_min(1e-30)).item()
        print(f"  {LABEL[k]:<16} max |logit diff| {(z - z0).abs().max().item():.2e}   rel. diff of dL/dW: conv 2 "
              f"{rel(g, g0):.2e}, conv 13 {rel(h, h0):.2e}   same predictions: {torch.equal(z.argmax(1), z0.argmax(1))}")


def run_width(names, width, warmup, reps, T, batch, memory, channels_last):
    tr = {k: Trainer(k, width, T, batch, channels_last=channels_last) for k in names}
    times = interleaved({k: t.step for k, t in tr.items()}, warmup, reps)
    rows = {}
    for k, t in tr.items():
        s = [a for a, _ in times[k]]
        rows[k] = dict(sec=med(s), lo=min(s), hi=max(s), faults=med([b for _, b in times[k]]),
                       wparams=weight_params(t.net), params=all_params(t.net))
        if memory:
            t.opt.zero_grad(set_to_none=True)
            rows[k]['peak'] = profiler_peak(lambda t=t: t.step(zero=False))
    del tr
    return rows


def print_rows(width, rows, batch, mem_from=None):
    best = max((k for k in rows if k in PEERS), key=lambda k: -rows[k]['sec'], default=None)
    print(f"\nVGG-16 width {width}: {'framework':<16}{'version':>9}{'params':>11}{'ms/step (min-max)':>24}{'images/s':>10}"
          f"{'ours/this':>10}{'faults/step':>12}{'peak MiB':>10}")
    for k, r in rows.items():
        peak = r.get('peak', (mem_from or {}).get(k, {}).get('peak'))
        extra = f"+{r['params'] - r['wparams']}" if r['params'] != r['wparams'] else ''
        ratio = r['sec'] / rows['ours']['sec'] if 'ours' in rows else float('nan')
        print(f"{'':<19}{LABEL[k]:<16}{version_of(k):>9}{r['wparams']:>11,}{extra:<4}"
              f"{r['sec'] * 1e3:>8.0f} ({r['lo'] * 1e3:.0f}-{r['hi'] * 1e3:.0f}){'':>4}{batch / r['sec']:>10.1f}"
              f"{ratio:>9.2f}x{r['faults']:>12,.0f}{(peak or float('nan')) / 2**20:>10.0f}")
    return best


def verdict(width, rows, best, batch, mem_from=None):
    if best is None: return
    peak = lambda k: rows[k].get('peak', (mem_from or {}).get(k, {}).get('peak', float('nan')))
    for us in ('ours', 'ours-whatif'):
        if us not in rows: continue
        speed = rows[best]['sec'] / rows[us]['sec']
        ok = speed >= 1.5 and peak(us) <= peak(best)
        print(f"  width {width}: {LABEL[us]} {batch / rows[us]['sec']:.1f} vs the faster peer ({LABEL[best]}) "
              f"{batch / rows[best]['sec']:.1f} images/s: {speed:.2f}x; peak memory {peak(us) / 2**20:.0f} vs "
              f"{peak(best) / 2**20:.0f} MiB -> 'at least 1.5x at no more memory': {'HOLDS' if ok else 'DOES NOT HOLD'}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--widths', type=float, nargs='+', default=[0.25, 1.0])
    ap.add_argument('--reps', type=int, nargs='+', default=[10, 3], help='timed steps per framework, one per width')
    ap.add_argument('--warmup', type=int, nargs='+', default=[2, 2], help='warm-up steps per framework, one per width')
    ap.add_argument('--T', type=int, default=8)
    ap.add_argument('--batch', type=int, default=64)
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--malloc', default='both', choices=['default', 'tuned', 'both'])
    ap.add_argument('--channels-last', action='store_true', help='model and input in channels_last (all frameworks)')
    ap.add_argument('--frameworks', nargs='+', default=list(FRAMEWORKS), choices=list(FRAMEWORKS),
                    help="ours-whatif: ours with bench/_whatif.py's layer 1 once, and channels_last")
    ap.add_argument('--no-check', action='store_true', help='skip the same-function check')
    a = ap.parse_args(argv)
    per = lambda xs, i: xs[min(i, len(xs) - 1)]
    torch.set_num_threads(a.threads)
    names, notes = available(a.frameworks)
    print(f"{datetime.datetime.now():%Y-%m-%d %H:%M}  {machine()}")
    print(f"{torch.get_num_threads()} thread(s); the machine may be shared with other jobs (see the load average): "
          f"compare the frameworks within this run, where their steps are interleaved")
    print("versions: " + ', '.join(f"{LABEL[k]} {version_of(k)}" for k in names) + (f"; {'; '.join(notes)}" if notes else ''))
    print(f"training step: T={a.T}, batch {a.batch}, 32x32x3, 10 classes, float32"
          f"{', channels_last' if a.channels_last else ''}; SGD momentum 0.9")
    if 'ours' in names and len(names) > 1 and not a.no_check: check_same_function([k for k in names if k != 'ours-whatif'])
    phases = ['default', 'tuned'] if a.malloc == 'both' else [a.malloc]
    results = {}
    for ph in phases:
        if ph == 'tuned': print(f"\n== allocator: glibc mallopt(M_MMAP_MAX=0, M_TRIM_THRESHOLD=2 GiB) -> {keep_freed_memory()}")
        else: print("\n== allocator: glibc default (large blocks are mmap'd and returned at every free)")
        for i, w in enumerate(a.widths):
            rows = run_width(names, w, per(a.warmup, i), per(a.reps, i), a.T, a.batch,
                             memory=(ph == phases[0]), channels_last=a.channels_last)
            best = print_rows(w, rows, a.batch, results.get(('default', w)))
            results[(ph, w)] = rows
            verdict(w, rows, best, a.batch, results.get((phases[0], w)))
    print("\nparams = weights + biases + BN affine parameters (the same in the three); '+15' = our trainable thresholds, "
          "one per IF layer. ours/this = this framework's seconds per step / ours (above 1: ours is faster). "
          "'ours + what-ifs' is NOT the package: it runs bench/_whatif.py's prototypes of changes to robustsparsesnn "
          "(layer 1 once for the T copies, channels_last) on our model, as evidence for them; "
          "it always runs in channels_last, the peers only with --channels-last.")


if __name__ == '__main__':
    main()
