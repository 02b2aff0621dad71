"""The CPU preset of robust ANN pretraining: a width-0.25 VGG-11 on Fashion-MNIST, TRADES (eps 8/255) vs standard
training, both evaluated with PGD-10 at eps 8/255 on the test split.

    .venv/bin/python scripts/cpu_preset_ann.py [RUN_FOLDER]     (default: runs/cpu_preset_ann)

Stopping it and running it again resumes each model from its last finished epoch."""
import json, sys, time
from pathlib import Path

import torch

from robustsparsesnn.attacks import make_attack, robust_accuracy
from robustsparsesnn.core import RunDir, save_json, seed_everything
from robustsparsesnn.data import get_loaders
from robustsparsesnn.models import vgg11
from robustsparsesnn.training import fit
from dataclasses import replace
from robustsparsesnn.training import TrainConfig

# the CPU-sized settings these results were made with (the package keeps only the paper's as constants)
CPU = dict(cpu_ann=TrainConfig(objective='trades', eps=8/255, beta=2.0, attack='pgd-kl', attack_steps=3, epochs=6, lr=0.05,
                               weight_decay=5e-4, eval_n=500),
           cpu_standard=TrainConfig(objective='standard', eps=8/255, epochs=6, lr=0.05, weight_decay=5e-4, eval_n=500, select='clean'),
           snn_cpu=TrainConfig(objective='trades', eps=8/255, beta=2.0, attack='rfgsm-kl', epochs=3, lr=1e-3, momentum=0.9,
                               weight_decay=1e-4, schedule='cosine', eval_eps=8/255, eval_steps=5, eval_n=200),
           e2e_cpu=TrainConfig(objective='trades', eps=8/255, beta=2.0, attack='rfgsm-kl', epochs=3, lr=0.05, momentum=0.9,
                               weight_decay=1e-4, schedule='cosine', eval_eps=8/255, eval_steps=5, eval_n=200))

def preset(name, **changes): return replace(CPU[name], **changes)
snn_preset = preset

N_TRAIN, N_VAL, N_TEST = 10_000, 1_000, 1_000


def main(folder='runs/cpu_preset_ann'):
    data = get_loaders('fashion-mnist', batch_size=128, n_train=N_TRAIN, n_val=N_VAL, n_test=N_TEST, seed=0)
    pgd = make_attack('pgd', eps=8 / 255, steps=10, seed=0)
    results = {}
    for name in ('cpu_ann', 'cpu_standard'):
        cfg = preset(name)
        run = RunDir(Path(folder) / name, config=dict(preset=name, n_train=N_TRAIN, n_val=N_VAL, **vars(cfg)), seed=0)
        seed_everything(0)
        model = vgg11(num_classes=10, in_channels=1, width=0.25, mean=data.spec.mean, std=data.spec.std)
        t0 = time.time()
        fit(model, data, cfg, run=run, name='ann')
        r = robust_accuracy(model, pgd, data.test, desc=f'{name} test PGD-10')
        results[name] = dict(clean=r['clean'], pgd10_8_255=r['robust'], n_test=r['n'], train_s=round(time.time() - t0))
        print(name, json.dumps(results[name]), flush=True)
    gap = results['cpu_ann']['pgd10_8_255'] - results['cpu_standard']['pgd10_8_255']
    print(f"robust - standard under PGD-10 at 8/255: {100 * gap:+.1f} points")
    save_json(Path(folder) / 'results.json', results)
    return results


if __name__ == '__main__': main(*sys.argv[1:])
