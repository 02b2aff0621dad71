"""Where the conversion error comes from: clean accuracy of the converted SNN (before finetuning) vs simulation length.

The CPU-preset sparse ANN of scripts/cpu_figure1.py (VGG-11 width 0.25, Fashion-MNIST, 90% LWM sparsity) converted
five ways, all with the paper's calibration (T_c = 100, 10 batches of 64, rho = 99.7):

- paper:            Algorithm 1 as published: hard reset, BN statistics re-estimated on the spiking data, lambda 0.3
- paper, lambda 1:  the same without the threshold scaling
- soft reset:       BN re-estimated on spikes, lambda 1, reset by subtraction
- rate, hard reset: ANN BN statistics kept, thresholds folded into the next layer's weights, lambda 1, hard reset
- rate, soft reset: the same with reset by subtraction (the textbook rate-exact conversion)

Each is evaluated at T = 8 ... 128 on the first --n-test test images; results.json and gap.png go to --out.

    .venv/bin/python scripts/cpu_conversion_gap.py [--ann runs/cpu_figure1/sparse_ann/ann.safetensors]
"""
import argparse, json, time
from pathlib import Path

import torch
import matplotlib; matplotlib.use('Agg')
import matplotlib.pyplot as plt

from robustsparsesnn.core import load_state, save_json, seed_everything
from robustsparsesnn.data import get_loaders
from robustsparsesnn.models import vgg11
from robustsparsesnn.conversion import convert, calibration_batches, estimate_bn_stats

SCHEMES = {'paper': dict(bn_stats='spiking', lam=0.3, reset='hard'),
           'paper, lambda 1': dict(bn_stats='spiking', lam=1.0, reset='hard'),
           'soft reset': dict(bn_stats='spiking', lam=1.0, reset='soft'),
           'rate, hard reset': dict(bn_stats='ann', lam=1.0, reset='hard'),
           'rate, soft reset': dict(bn_stats='ann', lam=1.0, reset='soft')}


@torch.no_grad()
def accuracy(model, loader):
    model.eval(); right = n = 0
    for x, y in loader: right += (model(x).argmax(1) == y).sum().item(); n += len(y)
    return right / n


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--ann', default='runs/cpu_figure1/sparse_ann/ann.safetensors')
    ap.add_argument('--out', default='runs/cpu_conversion')
    ap.add_argument('--n-test', type=int, default=1000)
    ap.add_argument('--Ts', default='8,16,32,64,128')
    a = ap.parse_args()
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    Ts = [int(t) for t in a.Ts.split(',')]
    d = get_loaders('fashion-mnist', batch_size=128, n_train=3000, n_val=100, n_test=a.n_test, seed=0)
    ann = vgg11(num_classes=10, in_channels=1, width=0.25, mean=d.spec.mean, std=d.spec.std)
    ann.load_state_dict(load_state(a.ann)['model'])
    res = json.loads((out / 'results.json').read_text()) if (out / 'results.json').exists() else {}
    res.update(ann=a.ann, n_test=a.n_test, ann_clean=accuracy(ann.set_T(0), d.test))
    res.setdefault('schemes', {})
    print(f"ANN: clean {res['ann_clean']:.3f}", flush=True)
    batches = calibration_batches(d.train)
    for name, kw in SCHEMES.items():
        if name in res['schemes'] and all(str(T) in res['schemes'][name]['acc'] for T in Ts): continue
        seed_everything(0); t0 = time.time()
        snn = convert(ann, d.train, T=Ts[0], **kw)
        r = dict(settings=kw, calibration_s=round(time.time() - t0, 1), acc={})
        for T in Ts:
            if kw['bn_stats'] == 'spiking': estimate_bn_stats(snn, batches, T)
            r['acc'][str(T)] = accuracy(snn.set_T(T), d.test)
        r['seconds'] = round(time.time() - t0, 1)
        res['schemes'][name] = r
        save_json(out / 'results.json', res)
        print(f"{name:>17}: " + ', '.join(f"T={T} {v:.3f}" for T, v in r['acc'].items()) + f"  ({r['seconds']} s)", flush=True)
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for name, r in res['schemes'].items():
        ax.plot([int(t) for t in r['acc']], list(r['acc'].values()), 'o-', label=name)
    ax.axhline(res['ann_clean'], color='k', ls='--', label='sparse ANN')
    ax.set_xscale('log', base=2); ax.set_xlabel('simulation length T'); ax.set_ylabel('clean test accuracy')
    ax.set_title('converted SNN before finetuning'); ax.legend(fontsize=8); fig.tight_layout()
    fig.savefig(out / 'gap.png', dpi=110)


if __name__ == '__main__':
    main()
