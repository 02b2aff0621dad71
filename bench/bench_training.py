"""What an epoch of the paper's SNN finetuning and one PGD_ens evaluation cost on this CPU, and how close our SNN
training step comes to the machine's dense fp32 matmul rate.

1. RFGSM-TRADES finetuning step (Eq. 8/9, `snn_finetune.finetune` -> `training.fit` with the CPU-sized settings,
   `replace(PAPER_FINETUNE, eps=8/255, epochs=3, eval_steps=5, eval_n=200)`):
   the package's own `training.train_epoch` over --ft-steps copies of one batch, i.e. per batch: RFGSM on the KL
   term in eval mode (one no-grad forward for the clean reference logits, one forward + backward to the input),
   then CE(clean) + beta * KL(adv || clean) with two train-mode forwards and BPTT through both, SGD
   (lr 1e-3, momentum 0.9, wd 1e-4), gradient and weight masking. VGG-16 width 0.25, T = 8, batch 64, 32x32x3.
   Timed interleaved with the plain training step (forward + BPTT + SGD, as in bench_peers.py) and the attack alone.
2. PGD_ens: `evaluation.EnsembleAttack('pgd', eps=8/255, steps=10)` (19 members) on the same SNN in eval mode,
   UNTRAINED: random weights, BN statistics of 3 random train-mode batches (bench/_snn_peers.warm_batch_norm) and
   thresholds 1, under which every IF layer spikes (rates printed); labels = the SNN's own predictions, so every
   sample starts correct. Scheme 'every' (each member attacks every sample) is the cost for a robust model (an upper
   bound); 'sequential' (the paper's: members attack only the survivors) is measured at the largest step count.
   19 members x 10 steps on 256 samples is too slow for 1 shared core: measured
   on --ens-n samples (one batch) with 1 and 2 PGD steps, then extrapolated linearly in the steps (a + b * steps,
   10 steps) and in the samples (256 / n batches of n).
3. The machine's limit: a dense fp32 matmul (n = --mm-n; torch.mm = MKL sgemm) with 1 thread and with 2 threads (the
   machine has 2 cores and is shared: 2 threads compete with the other jobs), and a dense 3x3 conv (oneDNN, which runs
   the SNN's convolutions; on this AMD CPU it is faster than MKL's sgemm), and the fraction of the higher 1-thread
   rate that the SNN steps reach, counting FLOPs as: forward = 2 x (conv + linear multiply-accumulates) over T*B
   samples (forward hooks); backward ~ 2 x forward (input and weight gradients; the first conv's input gradient, which
   is not computed, is counted too); batch norm, IF, pooling, loss and the optimizer not counted.

    nice -n 5 .venv/bin/python bench/bench_training.py [--ft-steps 3] [--ens-n 64] [--ens-steps 1 2] [--mm-n 2048] \
        [--threads 1] [--malloc default|tuned] [--width 0.25]
"""
import argparse, datetime, os, statistics, time
from dataclasses import replace
os.environ.setdefault('RSNN_PROGRESS', '0')

import torch
from torch import nn

from _snn_peers import Trainer, interleaved, keep_freed_memory, med, warm_batch_norm
from bench_peers import machine
from robustsparsesnn.ensembles import EnsembleAttack
from robustsparsesnn.models import exact_logits
from robustsparsesnn.models import vgg16
from robustsparsesnn.neurons import spiking_neurons
from robustsparsesnn.snn_finetune import PAPER_FINETUNE, SNN_MODE, SNN_T, training_layout
from robustsparsesnn.training import make_optimizer, mask_weights_, train_epoch


def forward_macs(model, x):
    "Multiply-accumulates of the conv and linear layers in one forward of `model(x)` (all T steps: the batch is T*B)."
    macs, hooks = [0], []
    def hook(m, i, o):
        if isinstance(m, nn.Conv2d): macs[0] += o.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
        else: macs[0] += o.numel() * m.in_features
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)): hooks.append(m.register_forward_hook(hook))
    try:
        with torch.no_grad(): model(x)
    finally:
        for h in hooks: h.remove()
    return macs[0]


def step_flops(model, x):
    "FLOPs of one training step: forward 2 x MACs, backward ~ 2 x forward."
    return 3 * 2 * forward_macs(model, x)


def matmul_gflops(n, threads, reps=5):
    old = torch.get_num_threads(); torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    ts = []
    for _ in range(reps):
        t = time.perf_counter(); a @ b; ts.append(time.perf_counter() - t)
    torch.set_num_threads(old)
    return 2 * n**3 / statistics.median(ts) / 1e9


def conv_gflops(threads, reps=5, c=256, hw=16, batch=64):
    "A dense 3x3 conv (c -> c channels, hw x hw, channels_last, oneDNN): the rate the SNN's convolutions can reach."
    old = torch.get_num_threads(); torch.set_num_threads(threads)
    x = torch.randn(batch, c, hw, hw).contiguous(memory_format=torch.channels_last)
    w = torch.randn(c, c, 3, 3).contiguous(memory_format=torch.channels_last)
    f = lambda: torch.nn.functional.conv2d(x, w, padding=1)
    f(); ts = []
    for _ in range(reps):
        t = time.perf_counter(); f(); ts.append(time.perf_counter() - t)
    torch.set_num_threads(old)
    return 2 * batch * c * hw * hw * c * 9 / statistics.median(ts) / 1e9


def finetune_setup(width, T, batch):
    "The SNN as `finetune` prepares it (T, pwl:1, trainable thresholds, masked weights, its layout), its optimizer and attack."
    model = training_layout(vgg16(10, 3, width=width).set_T(T).set_mode(SNN_MODE))
    for _, n in spiking_neurons(model): n.threshold.requires_grad_(True)
    mask_weights_(model)
    cfg = replace(PAPER_FINETUNE, eps=8/255, epochs=3, eval_steps=5, eval_n=200)  # CPU-sized: the paper's objective at 8/255
    opt, _ = make_optimizer(model, cfg)
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(batch, 3, 32, 32, generator=g), torch.randint(0, 10, (batch,), generator=g)
    return model, cfg, opt, cfg.make_attack(seed=0), x, y


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--width', type=float, default=0.25)
    ap.add_argument('--T', type=int, default=SNN_T)
    ap.add_argument('--batch', type=int, default=64)
    ap.add_argument('--ft-steps', type=int, default=3, help='timed finetuning steps (and plain steps, attacks)')
    ap.add_argument('--ens-n', type=int, default=64, help='samples of the measured PGD_ens batch')
    ap.add_argument('--ens-steps', type=int, nargs='+', default=[1, 2], help='PGD steps measured (>= 2 values to extrapolate)')
    ap.add_argument('--ens-target', type=int, nargs=2, default=[256, 10], help='samples and PGD steps extrapolated to')
    ap.add_argument('--mm-n', type=int, default=2048)
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--malloc', default='default', choices=['default', 'tuned'])
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    print(f"{datetime.datetime.now():%Y-%m-%d %H:%M}  {machine()}")
    print(f"{torch.get_num_threads()} thread(s); the machine may be shared with other jobs (load average above)")
    if a.malloc == 'tuned': print(f"allocator: mallopt(M_MMAP_MAX=0, M_TRIM_THRESHOLD=2 GiB) -> {keep_freed_memory()}")

    # 1. finetuning step vs plain step vs the attack alone
    model, cfg, opt, attack, x, y = finetune_setup(a.width, a.T, a.batch)
    plain = Trainer('ours', a.width, a.T, a.batch)
    ft = lambda: train_epoch(model, [(x, y)], opt, cfg, attack)
    atk = lambda: attack(model, x)
    res = interleaved({'finetune': ft, 'plain': plain.step, 'attack': atk}, warmup=1, reps=a.ft_steps)
    s = {k: med([t for t, _ in v]) for k, v in res.items()}
    print(f"\n== RFGSM-TRADES finetuning step (PAPER_FINETUNE at 8/255: {cfg.attack}, eps {cfg.eps:.4g}, beta {cfg.beta}, "
          f"lr {cfg.lr}), VGG-16 width {a.width}, T={a.T}, batch {a.batch}; median of {a.ft_steps}, interleaved")
    print(f"{'':<46}{'s/step':>8}{'images/s':>10}{'x plain':>9}")
    for k, label in (('plain', 'plain training step (forward + BPTT + SGD)'), ('attack', 'RFGSM-KL attack alone (in the step)'),
                     ('finetune', 'finetuning step (training.train_epoch, 1 batch)')):
        print(f"{label:<46}{s[k]:>8.2f}{a.batch / s[k]:>10.1f}{s[k] / s['plain']:>8.2f}x")
    print(f"an epoch of 50,000 images (CIFAR-10 size): {50_000 / a.batch * s['finetune'] / 3600:.1f} h of finetuning "
          f"on this core; the paper's 80 epochs: {80 * 50_000 / a.batch * s['finetune'] / 86400:.1f} days")

    # 3. matmul rate and fractions
    fl = step_flops(plain.net, plain.x)
    g1, g2 = matmul_gflops(a.mm_n, 1), matmul_gflops(a.mm_n, 2)
    c1, c2 = conv_gflops(1), conv_gflops(2)
    fwd = fl / 3
    ft_fl = 9 * fwd    # reference forward (1) + attack forward and input backward (~2) + 2 training forward+backward (2 x 3)
    print(f"\n== machine limit: dense fp32 matmul {a.mm_n}x{a.mm_n}: {g1:.0f} GFLOP/s with 1 thread, {g2:.0f} GFLOP/s "
          f"with 2 threads (2 cores shared with other jobs); torch.mm is MKL's sgemm")
    print(f"dense fp32 3x3 conv 256->256 channels, 16x16, batch 64, channels_last (oneDNN): {c1:.0f} GFLOP/s with 1 thread, "
          f"{c2:.0f} with 2 threads -- the higher of the two 1-thread rates is the limit used below: {max(g1, c1):.0f} GFLOP/s")
    print(f"plain training step: {fl / 1e9:.1f} GFLOP (forward {fwd / 2e9:.2f} GMAC over T*B = {a.T * a.batch} samples, "
          f"x2 FLOP/MAC, x3 for forward + backward) -> {fl / s['plain'] / 1e9:.1f} GFLOP/s = {fl / s['plain'] / 1e9 / g1:.0%} of "
          f"the 1-thread matmul rate, {fl / s['plain'] / 1e9 / max(g1, c1):.0%} of the limit")
    print(f"finetuning step: ~{ft_fl / 1e9:.1f} GFLOP (reference forward, attack forward + input backward ~2 forwards, "
          f"2 training forwards + backward) -> {ft_fl / s['finetune'] / 1e9:.1f} GFLOP/s = {ft_fl / s['finetune'] / 1e9 / g1:.0%} of the "
          "matmul rate, "
          f"{ft_fl / s['finetune'] / 1e9 / max(g1, c1):.0%} of the limit")
    del plain

    # 2. PGD_ens
    torch.manual_seed(0)
    snn = vgg16(10, 3, width=a.width).set_T(a.T).set_mode(SNN_MODE)
    warm_batch_norm(snn, snn)
    snn.eval()
    rates = []
    hooks = [m.register_forward_hook(lambda m, i, o: rates.append(o.float().mean().item())) for _, m in spiking_neurons(snn)]
    xe = torch.rand(a.ens_n, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    ye = exact_logits(snn, xe).argmax(1)
    for h in hooks: h.remove()
    print(f"\n== PGD_ens (19 members, eps 8/255) on an UNTRAINED VGG-16 width {a.width} SNN, T={a.T}, eval mode, "
          f"thresholds 1; firing rates per IF layer {min(rates):.3f}-{max(rates):.3f}; labels = its own predictions")
    meas = {}
    for steps in a.ens_steps:
        for scheme in ('every',) + (('sequential',) if steps == a.ens_steps[-1] else ()):
            ens = EnsembleAttack('pgd', eps=8 / 255, steps=steps)
            t = time.perf_counter(); r = ens.run(snn, xe, ye, scheme=scheme); dt = time.perf_counter() - t
            meas[(scheme, steps)] = dt
            print(f"  {a.ens_n} samples, {steps} PGD step(s), scheme {scheme:<10}: {dt:7.1f} s  (robust {r.robust_acc:.0%}; "
                  f"samples broken per member, first 5: {r.member_broken.tolist()[:5]})")
    n_t, k_t = a.ens_target
    if len(a.ens_steps) >= 2:
        k0, k1 = a.ens_steps[0], a.ens_steps[-1]
        b = (meas[('every', k1)] - meas[('every', k0)]) / (k1 - k0); c = meas[('every', k0)] - b * k0
        est = (c + b * k_t) * n_t / a.ens_n
        print(f"  extrapolated linearly, scheme every: {c:.1f} s + {b:.1f} s per PGD step for {a.ens_n} samples -> {n_t} "
              f"samples ({n_t / a.ens_n:g} batches of {a.ens_n}) x {k_t} steps: {est:.0f} s ({est / 60:.1f} min) on this "
              f"core; an upper bound of PGD_ens (the cost for a model that no member breaks)")
        print("  scheme sequential (the paper's) attacks only the survivors of the earlier members: its cost lies between "
              "that bound and 1/19 of it, depending on how robust the model is")

if __name__ == '__main__':
    main()
