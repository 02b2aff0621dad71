"""CPU-scale Figure 1: conversion + masked SNN finetuning vs end-to-end sparse adversarial SNN training.

Fashion-MNIST (or --data cifar10-jpeg), VGG-11 (width 0.25), 90% sparsity (LWM, uniform per layer). Stages, each resumable (checkpoints in
the output folder; stop it and run it again to continue):

1. sparse ANN: the robust CPU-preset ANN (scripts/cpu_preset_ann.py), LWM-pruned to 10% density per layer,
   then 1 epoch of the cpu_ann TRADES preset (on --n-train-ann images) with the mask frozen;
2. conversion (Algorithm 1, paper defaults T_c=100, 10 batches of 64, rho=99.7, lambda=0.3), with clean test
   accuracy of the ANN and of the converted SNN at T=8 and T=64 before any finetuning;
3. three SNN trainings of the same number of epochs, same data, same objective (Eq. 8, RFGSM on KL, beta 2):
   conversion + finetuning (snn_cpu preset, lr 1e-3), E2E with random connectivity and E2E with the ANN's
   connectivity (e2e_cpu preset, lr 0.05, V_th = 1, fresh weights);
4. figure1.png and results.json: per-epoch validation clean and PGD accuracy of the three (PGD-5 through the
   training surrogate, cheap), and for the final weights of each run the test accuracy under the paper's
   Figure-1 attack, PGD_ens (19 surrogates, 10 steps, 8/255), and under the black-box Square attack (8/255,
   --square-queries), on the first --n-ens test images.

    .venv/bin/python scripts/cpu_figure1.py [--out runs/cpu_figure1] [--T 4] [--epochs 3] [--n-train 1500]
"""
import argparse, json, time
from pathlib import Path

import torch

from robustsparsesnn.attacks import make_attack, robust_accuracy
from robustsparsesnn.core import RunDir, seed_everything, load_state, save_json
from robustsparsesnn.data import get_loaders
from robustsparsesnn.layers import prunable_layers
from robustsparsesnn.models import vgg11
from robustsparsesnn.training import fit, evaluate
from cpu_preset_ann import preset, snn_preset   # the CPU-sized settings these results were made with (same folder)
from robustsparsesnn.conversion import convert, calibration_batches, estimate_bn_stats
from robustsparsesnn.snn_finetune import finetune, e2e_snn, zero_set_matches, snn_health
from robustsparsesnn.evaluation import EnsembleAttack

ANN = 'runs/cpu_preset_ann/cpu_ann/ann.safetensors'


def lwm(model, density):
    "LWM pruning: pruning.lwm_prune when available, else the same rule here (largest |w| per layer)."
    try:
        from robustsparsesnn.pruning import lwm_prune
        return lwm_prune(model, density)
    except ImportError:
        from robustsparsesnn.layers import kept_count, topk_mask
        with torch.no_grad():
            for _, l in prunable_layers(model):
                l.freeze_mask(); l.mask.copy_(topk_mask(l.effective_weight().abs(), kept_count(density, l.weight.numel())))
                l.density = l.kept / l.weight.numel(); l.weight.mul_(l.mask)
        return model


def new_model(spec):
    return vgg11(num_classes=spec.num_classes, in_channels=spec.in_channels, width=0.25, mean=spec.mean, std=spec.std)


def clean_acc(model, data, n):
    return robust_accuracy(model, make_attack('fgsm', eps=0.0), data, n=n, desc='clean')['clean']


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--out', default='runs/cpu_figure1')
    ap.add_argument('--ann', default=ANN)
    ap.add_argument('--data', default='fashion-mnist', help="the data set of the ANN (fashion-mnist or cifar10-jpeg)")
    ap.add_argument('--T', type=int, default=4, help='SNN time steps of training and validation')
    ap.add_argument('--epochs', type=int, default=3)
    ap.add_argument('--n-train', type=int, default=1500, help='training images of the SNN runs')
    ap.add_argument('--n-train-ann', type=int, default=3000, help='training images of the 1-epoch sparse ANN finetune')
    ap.add_argument('--batch-size', type=int, default=64)
    ap.add_argument('--eval-n', type=int, default=100)
    ap.add_argument('--eval-steps', type=int, default=5)
    ap.add_argument('--n-conv-test', type=int, default=300, help='test images for the accuracies right after conversion')
    ap.add_argument('--n-ens', type=int, default=200, help='test images of the final PGD_ens and Square evaluations')
    ap.add_argument('--square-queries', type=int, default=1000, help='query budget of the final Square attack')
    ap.add_argument('--density', type=float, default=0.1)
    ap.add_argument('--threads', type=int, default=1, help='torch threads (1 is faster on a shared, oversubscribed machine)')
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    t_start = time.time()
    res = json.loads((out / 'results.json').read_text()) if (out / 'results.json').exists() else {}
    res['settings'] = vars(a)

    # 1. sparse ANN
    d_ann = get_loaders(a.data, batch_size=128, n_train=a.n_train_ann, n_val=1_000, n_test=1_000, seed=0)
    cfg_ann = preset('cpu_ann', epochs=1, eval_n=a.eval_n)
    run = RunDir(out / 'sparse_ann', config=dict(ann=a.ann, density=a.density, n_train=a.n_train_ann, **vars(cfg_ann)), seed=0)
    seed_everything(0)
    ann = new_model(d_ann.spec)
    ann.load_state_dict(load_state(a.ann)['model'])
    lwm(ann, a.density)
    t0 = time.time()
    fit(ann, d_ann, cfg_ann, run=run, name='ann')
    masks = {n: l.mask.clone() for n, l in prunable_layers(ann)}
    if 'sparse_ann' not in res:
        dens = {n: l.kept / l.weight.numel() for n, l in prunable_layers(ann)}
        res['sparse_ann'] = dict(density=sum(l.kept for _, l in prunable_layers(ann)) / sum(l.weight.numel() for _, l in prunable_layers(ann)),
                                 layer_density=dens, seconds=round(time.time() - t0))
        save_json(out / 'results.json', res)
    print('sparse ANN:', json.dumps({k: v for k, v in res['sparse_ann'].items() if k != 'layer_density'}), flush=True)

    # 2. conversion
    d = get_loaders(a.data, batch_size=a.batch_size, n_train=a.n_train, n_val=1_000, n_test=1_000, seed=0)
    crun = RunDir(out / 'conversion', config=dict(T=a.T, n_train=a.n_train, batch_size=a.batch_size), seed=0)
    if crun.has('snn0'):
        snn = new_model(d.spec); snn.load_state_dict(crun.load('snn0')['model']); snn.set_T(a.T)
    else:
        seed_everything(0)
        t0 = time.time()
        snn = convert(ann, d_ann.train, T=a.T)
        conv = dict(thresholds=snn.conversion['thresholds'], seconds=round(time.time() - t0))
        batches = calibration_batches(d_ann.train)
        probe = new_model(d.spec); probe.load_state_dict(snn.state_dict())
        conv['ann_clean'] = clean_acc(ann.eval(), d.test, a.n_conv_test)
        for T in sorted({a.T, 8, 64}):
            estimate_bn_stats(probe, batches, T)      # BN statistics of the spiking data at this T
            conv[f'snn_clean_T{T}'] = clean_acc(probe.set_T(T), d.test, a.n_conv_test)
            print(f'converted SNN, T={T}: clean {conv[f"snn_clean_T{T}"]:.3f} (ANN {conv["ann_clean"]:.3f})', flush=True)
        vcfg = snn_preset('snn_cpu', eval_n=a.eval_n, eval_steps=a.eval_steps)
        conv['epoch0_val'] = evaluate(snn.set_mode('pwl:1'), d.val, vcfg)
        conv['n_test'] = a.n_conv_test
        res['conversion'] = conv
        crun.save('snn0', {'model': snn.state_dict()}, meta=dict(T=a.T))
        save_json(out / 'results.json', res)
    print('conversion:', json.dumps({k: v for k, v in res['conversion'].items() if k != 'thresholds'}), flush=True)

    # 3. the three SNN trainings (4. their final test evaluation)
    runs, (xs, ys) = {}, map(torch.cat, zip(*d.test))
    for key, make, cfg_name in (
            ('conversion', lambda: snn, 'snn_cpu'),
            ('e2e_random', lambda: e2e_snn(new_model(d.spec), ann, 'random', seed=0, T=a.T), 'e2e_cpu'),
            ('e2e_ann', lambda: e2e_snn(new_model(d.spec), ann, 'ann', T=a.T), 'e2e_cpu')):
        cfg = snn_preset(cfg_name, epochs=a.epochs, eval_n=a.eval_n, eval_steps=a.eval_steps)
        seed_everything(1)
        model = make()
        extra = {} if key == 'conversion' else dict(init='sparse', vth=1.0)     # e2e_snn's defaults, recorded
        r = RunDir(out / ('conversion_ft' if key == 'conversion' else key),
                   config=dict(T=a.T, n_train=a.n_train, batch_size=a.batch_size, **extra, **vars(cfg)), seed=1)
        t0 = time.time()
        hist = finetune(model, d, cfg, T=a.T, run=r, name='snn', restore_best=False)
        runs[key] = dict(history=hist, zero_set_is_ann_mask=all(zero_set_matches(model, masks).values()) if key != 'e2e_random' else None,
                         health=snn_health(model), seconds_this_call=round(time.time() - t0))
        print(key, json.dumps([{k: round(v, 4) for k, v in h.items()} for h in hist]), flush=True)
        final = res.setdefault('final_test', {})
        if key not in final:                      # 4. the final weights under PGD_ens at 8/255 (the paper's Figure 1 attack)
            t0 = time.time()
            r_ens = EnsembleAttack('pgd', eps=8/255, steps=10, seed=0).run(model.eval(), xs[:a.n_ens], ys[:a.n_ens])
            final[key] = dict(n=a.n_ens, clean=r_ens.clean_acc, pgd_ens=r_ens.robust_acc, seconds=round(time.time() - t0))
            save_json(out / 'results.json', res)
        if 'square' not in final[key]:            # black-box check: is a white-box number held up by masked gradients?
            t0 = time.time()
            sq = robust_accuracy(model.eval(), make_attack('square', eps=8/255, n_queries=a.square_queries), (xs[:a.n_ens], ys[:a.n_ens]))
            final[key].update(square=sq['robust'], square_queries=a.square_queries, square_seconds=round(time.time() - t0))
            save_json(out / 'results.json', res)
        print(key, 'final test:', json.dumps(final[key]), flush=True)
    res['runs'] = {**res.get('runs', {}), **runs}
    res['wall_clock_this_call_s'] = round(time.time() - t_start)
    save_json(out / 'results.json', res)
    plot(res, out / 'figure1.png', d.spec.title)
    print(f"done in {time.time() - t_start:.0f} s; {out / 'figure1.png'}")


def plot(res, path, title='Fashion-MNIST'):
    import matplotlib; matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.4, 4))
    colors = dict(e2e_random='tab:gray', e2e_ann='tab:blue', conversion='tab:red')
    labels = dict(e2e_random='E2E, random conn.', e2e_ann='E2E, ANN conn.', conversion='Conversion + sparse FT (ours)')
    for key, run in res['runs'].items():
        h = run['history']
        ep, cl, rb = [r['epoch'] for r in h], [100 * r['val_clean'] for r in h], [100 * r['val_robust'] for r in h]
        if key == 'conversion':
            e0 = res['conversion']['epoch0_val']
            ep, cl, rb = [0] + ep, [100 * e0['val_clean']] + cl, [100 * e0['val_robust']] + rb
        ax.plot(ep, cl, '-o', color=colors[key], label=labels[key] + ' (clean)')
        ax.plot(ep, rb, '--s', color=colors[key], label=labels[key] + ' (PGD)')
    s = res['settings']
    ax.set(xlabel='SNN training epoch', ylabel='validation accuracy (%)',
           title=f"{title}, VGG-11/4, {100 * (1 - s['density']):.0f}% sparse, T={s['T']}")
    ax.grid(alpha=0.3); ax.legend(fontsize=7)
    fig.tight_layout(); fig.savefig(path, dpi=110)


if __name__ == '__main__':
    main()
