"""Table 3 and Figure B1 at CPU scale: a dense SNN and its 90% and 99% sparse versions, converted from the
CPU-preset robust ANN (width-0.25 VGG-11, Fashion-MNIST; scripts/cpu_preset_ann.py); spikes per sample, exact
accumulates (Eq. 12), energy ratios dense / sparse, per-layer spike rates, on the first --n-test test images.

Sparse ANNs: the pruned+finetuned models of scripts/cpu_pruning_table.py (<pruning-dir>/<method>-<sparsity>/, stage
'finetune' or 'pruned') when they exist, else magnitude pruning (LWM, pruning.prune(..., 'lwm', finetune=False)) of
the dense ANN. SNNs: conversion.convert (Algorithm 1 threshold calibration, T=8), no SNN finetuning. When
robustsparsesnn.conversion is missing, the fallback is the ANN at T=8 with every threshold 1 (said in the output).

    .venv/bin/python scripts/cpu_energy_table.py [--out runs/cpu_energy] [--n-test 1000] [--storage]

--storage also measures the bytes on disk of a full-width VGG-16 (LWM masks) at 0%, 90% and 99% sparsity.
Results: <out>/table.json (reports), <out>/table3.md, <out>/spike_rates.png; converted SNNs are cached in <out>."""
import argparse, json, os, tempfile, time
from pathlib import Path

import torch

from robustsparsesnn.core import RunDir, load_state, save_json, seed_everything, get_device
from robustsparsesnn.data import get_loaders
from robustsparsesnn.models import vgg11, vgg16
from robustsparsesnn.layers import prunable_layers, topk_mask, kept_count
from robustsparsesnn.neurons import spiking_neurons
from robustsparsesnn.energy import (energy_report, relative_energy, table3, plot_spike_rates, EnergyReport,
                                    storage_bytes, load_compact, sparsity)

ANN = 'runs/cpu_preset_ann/cpu_ann/ann.safetensors'


def build(spec):
    return vgg11(num_classes=10, in_channels=1, width=0.25, mean=spec.mean, std=spec.std)


def sparse_ann(ann_path, spec, s, method, pruning_dir):
    "The sparse ANN at sparsity s: a finished pruning run if there is one, else LWM of the dense ANN."
    model = build(spec)
    model.load_state_dict(load_state(ann_path)['model'])
    if s == 0: return model, 'dense'
    run = Path(pruning_dir) / f'{method}-{s:g}'
    for stage in ('finetune', 'pruned'):
        f = run / f'{stage}.safetensors'
        if f.exists():
            state = load_state(f)
            state = state.get('model', state)
            for _, l in prunable_layers(model): l.freeze_mask()
            model.load_state_dict(state)
            return model, f'{method} ({stage}, {run})'
    try:
        from robustsparsesnn.pruning import prune
        prune(model, 'lwm', 1 - s, finetune=False)
        return model, 'LWM (pruning.prune, no finetuning)'
    except ImportError:
        with torch.no_grad():
            for _, l in prunable_layers(model):
                l.mask.copy_(topk_mask(l.weight.abs(), kept_count(1 - s, l.weight.numel()))); l.weight.mul_(l.mask)
        return model, 'LWM (layers.topk_mask, no finetuning)'


def to_snn(ann, loaders, T, T_c, n_batches):
    try:
        from robustsparsesnn.conversion import convert
    except ImportError:
        ann.set_T(T)
        with torch.no_grad():
            for _, n in spiking_neurons(ann): n.threshold.fill_(1.0)
        return ann, f'fallback: the ANN at T={T} with thresholds 1 (conversion module missing)'
    snn = convert(ann, loaders.train, T=T, T_c=T_c, n_batches=n_batches, batch_size=64)
    return snn, f'conversion.convert (T={T}, T_c={T_c}, {n_batches} batches of 64, rho 99.7, lambda 0.3), no SNN finetuning'


@torch.no_grad()
def accuracy(model, loader, n):
    model.eval(); ok = seen = 0
    for x, y in loader:
        x, y = x[:n - seen], y[:n - seen]
        if len(x) == 0: break
        ok += (model(x).argmax(1) == y).sum().item(); seen += len(x)
    return ok / seen


def storage_table(folder):
    rows = ['| sparsity | dense fp32 (MiB) | checkpoint + bool masks (MiB) | compact fp32 (MiB) | compact fp16 (MiB) | dense / compact fp32 | dense / compact fp16 |',
            '|---|---:|---:|---:|---:|---:|---:|']
    out = {}
    for s in (0.0, 0.9, 0.99):
        torch.manual_seed(0)
        v = vgg16()
        with torch.no_grad():
            for _, l in prunable_layers(v):
                l.mask.copy_(topk_mask(l.weight.abs(), kept_count(1 - s, l.weight.numel()))); l.weight.mul_(l.mask)
        b = storage_bytes(v, Path(folder) / f'vgg16-{s:g}')
        back = load_compact(vgg16(), Path(folder) / f'vgg16-{s:g}' / 'compact_fp32.safetensors')
        sa, sb = v.state_dict(), back.state_dict()
        assert all(torch.equal(sa[k], sb[k]) and sa[k].dtype == sb[k].dtype for k in sa), 'round trip is not exact'
        out[s] = b
        M = 2 ** 20
        rows.append(f"| {100 * s:.0f}% | {b['dense_fp32'] / M:.2f} | {b['checkpoint_with_masks'] / M:.2f} | {b['compact_fp32'] / M:.2f} | "
                    f"{b['compact_fp16'] / M:.2f} | {b['dense_fp32'] / b['compact_fp32']:.1f}x | {b['dense_fp32'] / b['compact_fp16']:.1f}x |")
    return out, '\n'.join(rows)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--out', default='runs/cpu_energy')
    ap.add_argument('--ann', default=ANN)
    ap.add_argument('--pruning-dir', default='runs/cpu_pruning', help='runs of scripts/cpu_pruning_table.py')
    ap.add_argument('--method', default='hydra', choices=['lwm', 'hydra', 'harp'], help='which pruning run to use when present')
    ap.add_argument('--sparsities', type=float, nargs='+', default=[0.0, 0.9, 0.99])
    ap.add_argument('--T', type=int, default=8)
    ap.add_argument('--T-c', type=int, default=100, help='calibration steps (paper: 100)')
    ap.add_argument('--n-batches', type=int, default=10, help='calibration batches of 64 (paper: 10)')
    ap.add_argument('--n-test', type=int, default=1000)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--storage', action='store_true', help='also measure VGG-16 bytes on disk')
    ap.add_argument('--no-table', action='store_true', help='only the storage table')
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    result = {}
    if not a.no_table:
        if not Path(a.ann).exists(): raise SystemExit(f"no robust ANN at {a.ann}: run scripts/cpu_preset_ann.py first (or pass --ann)")
        seed_everything(0)
        d = get_loaders('fashion-mnist', batch_size=128, n_train=10_000, n_val=1_000, n_test=a.n_test, seed=0, augment=False)
        run = RunDir(out, config=dict(ann=a.ann, T=a.T, T_c=a.T_c, n_batches=a.n_batches, n_test=a.n_test, method=a.method))
        reports, info = {}, {}
        for s in a.sparsities:
            name = f'snn-{s:g}'
            ann, source = sparse_ann(a.ann, d.spec, s, a.method, a.pruning_dir)
            if run.has(name):                        # a cached converted SNN
                snn, meta = build(d.spec), run.load(name, with_meta=True)
                for _, l in prunable_layers(snn): l.freeze_mask()
                snn.load_state_dict(meta[0]['model']); snn.set_T(a.T); how = meta[1]['how']
            else:
                t = time.time()
                snn, how = to_snn(ann, d, a.T, a.T_c, a.n_batches)
                run.save(name, dict(model=snn.state_dict()), meta=dict(how=how, source=source, seconds=time.time() - t))
            t = time.time()
            acc = accuracy(snn, d.test, a.n_test)
            rep = energy_report(snn, d.test, n=a.n_test, desc=name)
            label = 'dense SNN' if s == 0 else f'{100 * s:g}% sparse SNN'
            reports[label] = rep
            info[label] = dict(source=source, snn=how, clean_acc=acc, sparsity=sparsity(snn), energy_seconds=time.time() - t)
            print(f"{label}: {source}; {how}; clean acc {acc:.3f}; spikes/sample {rep.spikes:.4g}; ACs {rep.acs:.4g}", flush=True)
        rows = relative_energy(reports)
        md = table3(rows)
        print(md)
        (out / 'table3.md').write_text(md + '\n')
        result = dict(rows=rows, info=info, reports={k: r.to_dict() for k, r in reports.items()})
        import matplotlib; matplotlib.use('Agg')
        ax = plot_spike_rates(reports, title='Per-layer spike rates, VGG-11 (w 0.25), Fashion-MNIST, T=8')
        ax.figure.tight_layout(); ax.figure.savefig(out / 'spike_rates.png', dpi=120)
    if a.storage:
        with tempfile.TemporaryDirectory() as tmp: st, md = storage_table(tmp)
        print(md)
        (out / 'storage.md').write_text(md + '\n')
        result['storage'] = {str(k): v for k, v in st.items()}
    result['seconds'] = time.time() - t0
    save_json(out / ('table.json' if not a.no_table else 'storage.json'), result)
    print(f"wall-clock {result['seconds']:.0f} s")


if __name__ == '__main__':
    main()
