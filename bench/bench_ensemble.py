"""Cost of the ensemble attack: the paper's sequential scheme (each member attacks only the samples still
classified correctly) against the naive one (every member attacks every clean-correct sample). Both use the same
seeds and give the same robust set; the sequential one needs a fraction of the forward/backward work.

    .venv/bin/python bench/bench_ensemble.py [--snn CHECKPOINT] [--n 64] [--eps 0.0314]

Without --snn (or when the file is missing) it uses a small SNN (VGG-11, width 0.125, T=4) on synthetic data with
hand-set thresholds; with it, that saved VGG-11 (width 0.25) SNN on Fashion-MNIST."""
import argparse, time
from pathlib import Path

import torch

from robustsparsesnn.core import load_state
from robustsparsesnn.ensembles import EnsembleAttack, PassCounter
from robustsparsesnn.models import exact_logits
from robustsparsesnn.models import vgg11
from robustsparsesnn.neurons import spiking_neurons


def setup(args):
    if args.snn and Path(args.snn).exists():
        from robustsparsesnn.data import get_loaders
        data = get_loaders('fashion-mnist', batch_size=args.n, n_train=10_000, n_val=1_000, n_test=1_000, seed=0)
        m = vgg11(num_classes=10, in_channels=1, width=0.25, mean=data.spec.mean, std=data.spec.std)
        m.load_state_dict(load_state(args.snn)['model'])
        x, y = next(iter(data.test))
        return m.set_T(8).eval(), x, y, f'CPU-preset SNN {args.snn} (T=8), Fashion-MNIST'
    torch.manual_seed(0)
    m = vgg11(num_classes=10, in_channels=1, width=0.125).eval()
    for _, n in spiking_neurons(m): n.threshold.data.fill_(0.5)
    m.set_T(4)
    x = torch.rand(args.n, 1, 16, 16)
    y = exact_logits(m, x).argmax(1)     # labels = the model's own predictions: every sample starts correct
    return m, x, y, 'random VGG-11 (width 0.125, T=4, thresholds 0.5) on random 16x16 images'


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--snn', default=None, help='a saved SNN checkpoint (VGG-11, width 0.25, Fashion-MNIST); default: the small synthetic '
                                               'SNN')
    p.add_argument('--n', type=int, default=64)
    p.add_argument('--eps', type=float, default=8 / 255)
    p.add_argument('--steps', type=int, default=5)
    p.add_argument('--threads', type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    model, x, y, what = setup(args)
    print(f"{what}; {len(x)} samples, eps {args.eps:.4g}")
    counter = PassCounter(model)
    print(f"{'attack':<10} {'scheme':<11} {'robust':>7} {'fwd calls':>9} {'fwd samples':>11} {'bwd calls':>9} "
          f"{'bwd samples':>11} {'seconds':>8}")
    for name, kw in (('fgsm', {}), ('pgd', dict(steps=args.steps))):
        ens, res = EnsembleAttack(name, eps=args.eps, **kw), {}
        for scheme in ('sequential', 'every'):
            counter.zero()
            t = time.perf_counter()
            r = ens.run(counter, x, y, scheme=scheme)
            s, c = time.perf_counter() - t, counter.counts()
            res[scheme] = (r, c, s)
            print(f"{ens.name:<10} {scheme:<11} {r.robust_acc:>7.1%} {c['forwards']:>9} {c['forward_samples']:>11} "
                  f"{c['backwards']:>9} {c['backward_samples']:>11} {s:>8.1f}")
        (a, ca, sa), (b, cb, sb) = res['sequential'], res['every']
        same = torch.equal(a.robust, b.robust)
        print(f"{ens.name}: same robust set: {same}; sequential/every: backward samples "
              f"{ca['backward_samples'] / max(cb['backward_samples'], 1):.2f}, forward samples "
              f"{ca['forward_samples'] / max(cb['forward_samples'], 1):.2f}, time {sa / sb:.2f}")
        if not same: raise SystemExit("the two schemes disagree")


if __name__ == '__main__': main()
