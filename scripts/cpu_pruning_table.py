"""The CPU-scale robust pruning table: LWM, HYDRA and HARP at 90% and 99% sparsity, each followed by its sparse
ANN finetuning (`prune_preset('cpu')`: TRADES at 8/255, 2 score + 2 finetune epochs), starting from the CPU-preset
robust ANN (width-0.25 VGG-11, Fashion-MNIST 10k subset; scripts/cpu_preset_ann.py). Clean and PGD-10 (eps 8/255)
accuracy on the first 1,000 test samples, and HARP's per-layer densities.

    .venv/bin/python scripts/cpu_pruning_table.py [--out runs/cpu_pruning] [--ann PATH]

Every (method, sparsity) run is a RunDir under --out; stopping the script and running it again resumes each run
from its last finished stage/epoch, and finished runs are read back from their result.json. The summary goes to
<out>/table.json."""
import argparse, json, os, time
from dataclasses import asdict, replace
from pathlib import Path

import torch

from robustsparsesnn.attacks import make_attack, robust_accuracy
from robustsparsesnn.core import RunDir, load_state, save_json, seed_everything, get_device
from robustsparsesnn.data import get_loaders
from robustsparsesnn.models import vgg11
from robustsparsesnn.pruning import prune, global_density, PruneConfig
from robustsparsesnn.training import TrainConfig

def prune_preset(name):
    "The CPU-sized pruning settings these results were made with: TRADES at 8/255, 2 score + 2 finetune epochs."
    t = dict(objective='trades', eps=8/255, beta=2.0, attack='pgd-kl', attack_steps=3, epochs=2, weight_decay=1e-4, eval_n=500)
    return PruneConfig(scores=TrainConfig(**t, lr=0.1), finetune=TrainConfig(**t, lr=0.01))

N_TRAIN, N_VAL = 10_000, 1_000
ANN = 'runs/cpu_preset_ann/cpu_ann/ann.safetensors'


def load_ann(path, spec, device):
    model = vgg11(num_classes=10, in_channels=1, width=0.25, mean=spec.mean, std=spec.std)
    model.load_state_dict(load_state(path)['model'])
    return model.to(device)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--out', default='runs/cpu_pruning', help='folder of the runs and table.json')
    ap.add_argument('--ann', default=ANN, help='the robust CPU-preset ANN (safetensors from scripts/cpu_preset_ann.py)')
    ap.add_argument('--sparsities', type=float, nargs='+', default=[0.9, 0.99])
    ap.add_argument('--methods', nargs='+', default=['lwm', 'hydra', 'harp'], choices=['lwm', 'hydra', 'harp'])
    ap.add_argument('--n-test', type=int, default=1000, help='test samples evaluated (clean and PGD-10)')
    ap.add_argument('--score-epochs', type=int, default=None, help='override the cpu preset (2)')
    ap.add_argument('--finetune-epochs', type=int, default=None, help='override the cpu preset (2)')
    ap.add_argument('--threads', type=int, default=2)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    if not Path(a.ann).exists():
        raise SystemExit(f"no robust ANN at {a.ann}: run scripts/cpu_preset_ann.py first (or pass --ann)")
    dev = get_device()
    data = get_loaders('fashion-mnist', batch_size=128, n_train=N_TRAIN, n_val=N_VAL, n_test=a.n_test, seed=0)
    cfg = prune_preset('cpu')
    if a.score_epochs: cfg = replace(cfg, scores=replace(cfg.scores, epochs=a.score_epochs))
    if a.finetune_epochs: cfg = replace(cfg, finetune=replace(cfg.finetune, epochs=a.finetune_epochs))
    pgd = make_attack('pgd', eps=8 / 255, steps=10, seed=0)
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    t_all = time.time()

    dense_file = out / 'dense.json'
    if dense_file.exists(): dense = json.loads(dense_file.read_text())
    else:
        pgd.reset(0)
        r = robust_accuracy(load_ann(a.ann, data.spec, dev), pgd, data.test, n=a.n_test, desc='dense PGD-10')
        dense = dict(method='dense', sparsity=0.0, density=1.0, clean=r['clean'], pgd10=r['robust'], n_test=r['n'])
        save_json(dense_file, dense)
    rows, harp_tables = [dense], {}
    for s in a.sparsities:
        for m in a.methods:
            density = round(1 - s, 10)
            run = RunDir(out / f'{m}-{s:g}', config=dict(method=m, density=density, ann=str(a.ann), n_train=N_TRAIN,
                                                          n_val=N_VAL, n_test=a.n_test, **asdict(cfg)), seed=0)
            if run.file('result.json').exists(): res = run.load_json('result.json')
            else:
                t0 = time.time()
                seed_everything(0)
                model = load_ann(a.ann, data.spec, dev)
                rep = prune(model, m, density, data, cfg, run=run)
                pgd.reset(0)
                r = robust_accuracy(model, pgd, data.test, n=a.n_test, desc=f'{m} {s:g} PGD-10')
                res = dict(method=m, sparsity=s, density=global_density(model), clean=r['clean'], pgd10=r['robust'],
                           n_test=r['n'], seconds=round(time.time() - t0), table=rep['table'],
                           **{k: rep[k] for k in ('scale', 'learned', 'learned_global') if k in rep})
                run.save_json('result.json', res)
            print(f"{m:6s} sparsity {s:g}: density {res['density']:.5f}  clean {res['clean']:.3f}  "
                  f"PGD-10 {res['pgd10']:.3f}", flush=True)
            rows.append({k: res[k] for k in ('method', 'sparsity', 'density', 'clean', 'pgd10', 'n_test')
                         if k in res} | dict(seconds=res.get('seconds')))
            if m == 'harp': harp_tables[f'{s:g}'] = dict(table=res['table'], learned=res.get('learned'),
                                                         learned_global=res.get('learned_global'), scale=res.get('scale'))
    summary = dict(rows=rows, harp=harp_tables, ann=str(a.ann), n_test=a.n_test, eps='8/255', attack='PGD-10',
                   config=asdict(cfg), seconds_this_call=round(time.time() - t_all))
    save_json(out / 'table.json', summary)
    return summary


if __name__ == '__main__': main()
