"""Counting overhead: an energy pass (spike recording by hooks + exact fan-out + Eq. 12) vs a plain SNN inference
pass over the same samples.

VGG-11 (width --width, default 0.25) on 1x28x28 inputs (Fashion-MNIST size), 90% random masks, T=8, --n samples
in batches of --batch. Times are medians of --repeats runs after one warm-up; also the fan-out computation
alone (one backward pass through the binary-mask network, done once per model).

    .venv/bin/python bench/bench_energy.py [--n 512] [--batch 128] [--T 8] [--width 0.25] [--repeats 3] [--device cpu]
"""
import argparse, statistics, time

import torch

from robustsparsesnn.core import get_device, seed_everything
from robustsparsesnn.layers import prunable_layers, topk_mask, kept_count
from robustsparsesnn.models import vgg11
from robustsparsesnn.energy import energy_report, fan_out, record_spikes


def sync(dev):
    if dev.type == 'cuda': torch.cuda.synchronize()


def timed(f, dev, repeats):
    f(); sync(dev)
    ts = []
    for _ in range(repeats):
        t = time.perf_counter(); f(); sync(dev); ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--n', type=int, default=512); ap.add_argument('--batch', type=int, default=128)
    ap.add_argument('--T', type=int, default=8); ap.add_argument('--width', type=float, default=0.25)
    ap.add_argument('--repeats', type=int, default=3); ap.add_argument('--device', default=None)
    ap.add_argument('--threads', type=int, default=2)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    dev = get_device(a.device)
    seed_everything(0)
    model = vgg11(num_classes=10, in_channels=1, width=a.width)
    with torch.no_grad():
        for _, l in prunable_layers(model):
            l.mask.copy_(topk_mask(torch.rand(l.weight.shape), kept_count(0.1, l.weight.numel()))); l.weight.mul_(l.mask)
    model = model.to(dev).set_T(a.T).eval()
    x = torch.rand(a.n, 1, 28, 28, device=dev)
    batches = list(x.split(a.batch))

    @torch.no_grad()
    def plain():
        for b in batches: model(b)
    def energy(): energy_report(model, [(b, None) for b in batches])
    def spikes(): record_spikes(model, [(b, None) for b in batches])
    def psi(): fan_out(model, (1, 28, 28))

    tp, te, ts, tf = (timed(f, dev, a.repeats) for f in (plain, energy, spikes, psi))
    print(f"device {dev}, VGG-11 width {a.width}, T={a.T}, {a.n} samples in batches of {a.batch}, 90% random masks")
    print(f"plain SNN inference : {tp:8.3f} s")
    print(f"energy pass         : {te:8.3f} s  ({te / tp:.2f}x; spikes + 2 fan-outs (exact, dense) + Eq. 12)")
    print(f"  spike recording   : {ts:8.3f} s  ({ts / tp:.2f}x)")
    print(f"  one fan-out pass  : {tf:8.3f} s  (once per model, independent of the number of samples)")


if __name__ == '__main__':
    main()
