"""Profile of our SNN training step (VGG-16 width 0.25, T = 8, batch 64, 32x32x3, forward + BPTT + SGD) and the cheap
wins measured against it, without editing the package.

1. The profile of the package as it is: torch.profiler over --steps training steps (after a warm-up), the top 15 operations by self CPU
   time, the IF neurons' share (IFSpike forward + IFSpikeBackward, CPU total), and the minor page faults and system
   time per step (getrusage).
2. Variants, timed interleaved in one process (median of --reps steps each after --warmup; images/s = 64 / median):
   the package as finetune trains (channels-last weights on a CPU) against channels-first, settings a user can switch
   without touching robustsparsesnn (bfloat16 autocast,
   which also makes the IF neurons integrate in bfloat16, so it is not the same computation; torch.compile with
   --compile), and a what-if prototype of a change inside the package (bench/_whatif.py, applied at run time in this
   process, checked against the package first): the first conv + BN computed once for the T identical direct-coded
   copies, alone and together with channels_last. Then (--malloc both, the default) the same variants again after
   mallopt(M_MMAP_MAX=0, M_TRIM_THRESHOLD=2 GiB) in this process (core.keep_freed_memory: large blocks reused instead
   of mmap'd and page-faulted at every allocation), and the profile of the package with that allocator.

    nice -n 5 .venv/bin/python bench/bench_profile.py [--width 0.25] [--steps 3] [--reps 8] [--warmup 2] [--threads 1] \
        [--malloc both|default|tuned] [--compile]
"""
import argparse, datetime, os, resource, time
os.environ.setdefault('KINETO_LOG_LEVEL', '5')

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

from _snn_peers import Trainer, interleaved, keep_freed_memory, med
from _whatif import dedup_forward
from bench_peers import machine


def profile_before(width, steps, T, batch, top=15):
    tr = Trainer('ours', width, T, batch)
    tr.step(); tr.step()
    r0 = resource.getrusage(resource.RUSAGE_SELF); t0 = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as p:
        for _ in range(steps): tr.step()
    wall = (time.perf_counter() - t0) / steps
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    ev = p.key_averages()
    total = sum(e.self_cpu_time_total for e in ev)
    print(f"\n== profile of the package as is (this allocator): {steps} training steps of our VGG-16 width {width} (T={T}, batch {batch}), "
          f"{wall * 1e3:.0f} ms/step under the profiler; top {top} operations by self CPU time")
    print(f"{'operation':<44}{'self CPU ms/step':>17}{'share':>8}{'calls/step':>11}")
    for e in sorted(ev, key=lambda e: -e.self_cpu_time_total)[:top]:
        print(f"{e.key[:43]:<44}{e.self_cpu_time_total / 1e3 / steps:>17.1f}{e.self_cpu_time_total / total:>8.1%}"
              f"{e.count / steps:>11.0f}")
    by = {e.key: e for e in ev}
    neuron = sum(by[k].cpu_time_total for k in ('IFSpike', 'IFSpikeBackward') if k in by)
    conv = sum(by[k].self_cpu_time_total for k in ('aten::mkldnn_convolution', 'aten::convolution_backward') if k in by)
    bn = sum(by[k].self_cpu_time_total for k in ('aten::native_batch_norm', 'aten::native_batch_norm_backward') if k in by)
    print(f"convolutions (forward + backward, self): {conv / total:.0%}; batch norm: {bn / total:.0%}; IF neurons "
          f"(IFSpike + IFSpikeBackward, total incl. their copy_/masked_fill_/...): {neuron / total:.0%} of self CPU time")
    print(f"per step: {(r1.ru_minflt - r0.ru_minflt) / steps:,.0f} minor page faults, "
          f"{(r1.ru_stime - r0.ru_stime) / steps * 1e3:.0f} ms system time, {(r1.ru_utime - r0.ru_utime) / steps * 1e3:.0f} ms user time "
          f"(system time: the kernel zeroing the fresh pages of tensors that glibc mmap'd; it is counted inside the operators "
          f"that first write them, e.g. copy_ and masked_fill_ in IFSpike)")


def profile_after(width, T, batch, steps, top=10):
    "The same profile for the package in this process's allocator (run last: after keep_freed_memory)."
    pk = Trainer('ours', width, T, batch)
    pk.step(); pk.step()
    with profile(activities=[ProfilerActivity.CPU]) as p:
        for _ in range(steps): pk.step()
    ev = p.key_averages()
    total = sum(e.self_cpu_time_total for e in ev)
    print(f"\nprofile of the package with this allocator, top {top} by self CPU time:")
    for e in sorted(ev, key=lambda e: -e.self_cpu_time_total)[:top]:
        print(f"{e.key[:43]:<44}{e.self_cpu_time_total / 1e3 / steps:>17.1f}{e.self_cpu_time_total / total:>8.1%}"
              f"{e.count / steps:>11.0f}")


def variants(width, T, batch, compile_):
    "{name: step function}, every model from the same seed."
    out = {}
    base = Trainer('ours', width, T, batch); out['baseline (package as is)'] = base.step
    cf = Trainer('ours', width, T, batch); cf.net.to(memory_format=torch.contiguous_format)
    out['channels-first (the layout before)'] = cf.step
    bf = Trainer('ours', width, T, batch)
    def bf16_step():
        bf.opt.zero_grad(set_to_none=True)
        with torch.autocast('cpu', dtype=torch.bfloat16): z = bf.net(bf.x)
        F.cross_entropy(z.float(), bf.y).backward(); bf.opt.step()
    out['bfloat16 autocast (not exact)'] = bf16_step
    dd = Trainer('ours', width, T, batch); dd.fw.logits = lambda x: dedup_forward(dd.net, x)
    out['what-if: layer 1 once for T copies'] = dd.step
    al = Trainer('ours', width, T, batch, channels_last=True); al.fw.logits = lambda x: dedup_forward(al.net, x)
    out['what-if: layer 1 once + channels_last'] = al.step
    if compile_:
        co = Trainer('ours', width, T, batch); co.fw.logits = torch.compile(co.net)
        t = time.perf_counter(); co.step(); print(f"torch.compile: first step (compilation) {time.perf_counter() - t:.0f} s")
        out['torch.compile (default mode)'] = co.step
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--width', type=float, default=0.25)
    ap.add_argument('--T', type=int, default=8)
    ap.add_argument('--batch', type=int, default=64)
    ap.add_argument('--steps', type=int, default=3, help='profiled steps')
    ap.add_argument('--reps', type=int, default=8)
    ap.add_argument('--warmup', type=int, default=2)
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--malloc', default='both', choices=['default', 'tuned', 'both'])
    ap.add_argument('--compile', action='store_true', help='also torch.compile the model (slow to compile)')
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    print(f"{datetime.datetime.now():%Y-%m-%d %H:%M}  {machine()}")
    print(f"{torch.get_num_threads()} thread(s); the machine may be shared with other jobs: compare within this run")
    phases = ['default', 'tuned'] if a.malloc == 'both' else [a.malloc]
    if phases[0] == 'tuned': print(f"allocator tuned: {keep_freed_memory()}")
    profile_before(a.width, a.steps, a.T, a.batch)
    for ph in phases:
        if ph == 'tuned' and phases[0] != 'tuned': print("\n== allocator: mallopt(M_MMAP_MAX=0, M_TRIM_THRESHOLD=2 GiB) -> "
                                                         f"{keep_freed_memory()}")
        elif ph == 'default': print("\n== allocator: glibc default")
        steps = variants(a.width, a.T, a.batch, a.compile)
        res = interleaved(steps, a.warmup, a.reps)
        b = med([s for s, _ in res['baseline (package as is)']])
        print(f"{'variant':<40}{'ms/step':>9}{'images/s':>10}{'speed-up':>10}{'faults/step':>13}")
        for k, v in res.items():
            s = med([x for x, _ in v])
            print(f"{k:<40}{s * 1e3:>9.0f}{a.batch / s:>10.1f}{b / s:>9.2f}x{med([f for _, f in v]):>13,.0f}")
        if ph == phases[-1]: profile_after(a.width, a.T, a.batch, a.steps)


if __name__ == '__main__':
    main()
