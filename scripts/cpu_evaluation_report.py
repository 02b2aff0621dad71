"""The CPU-scale robustness evaluation of one spiking network (notebook 09_evaluation): Table A1 (each ensemble
member alone vs the FGSM ensemble), PGD_ens at eps = 64/255, the Table-1-shaped report (clean, FGSM_ens, PGD_ens,
APGD-DLR_ens, APGD-CE_ens, RGA at 2/4/8 /255, Square at 500/1000/5000 queries, and the ANN counterparts) and,
with --sanity, the sanity checks (Table B3 steps, Square vs PGD_ens, naive vs ensemble).

    .venv/bin/python scripts/cpu_evaluation_report.py [--out runs/cpu_evaluation] [--n 200] [--snn CKPT] [--sanity]

The SNN: --snn loads a converted (and finetuned) SNN checkpoint (a `save_state` file with a 'model' entry, the
CPU-preset VGG-11 architecture); without it the script converts the robust CPU-preset ANN itself with
`conversion.convert` (Algorithm 1 with fewer calibration steps, no finetuning) and says so in the report.
Every measurement is saved as it finishes; running the command again resumes where it stopped."""
import argparse, json, time
from types import SimpleNamespace
from pathlib import Path

import torch

from robustsparsesnn.core import RunDir, get_device, load_state, save_json, seed_everything
from robustsparsesnn.data import get_loaders
from robustsparsesnn.models import vgg11
from robustsparsesnn.neurons import ENSEMBLE_MODES
from robustsparsesnn.evaluation import (EnsembleAttack, evaluation_report, report_markdown, sanity_checks,
                                        sanity_markdown, eps_label, exact_logits)

ANN = 'runs/cpu_preset_ann/cpu_ann/ann.safetensors'


def build_snn(args, data, run):
    "The SNN to evaluate and a sentence saying where it came from."
    def fresh(): return vgg11(num_classes=10, in_channels=data.spec.in_channels, width=0.25, mean=data.spec.mean, std=data.spec.std)
    ann = fresh(); ann.load_state_dict(load_state(args.ann)['model']); ann.eval()
    if args.snn:
        snn = fresh(); snn.load_state_dict(load_state(args.snn)['model'])
        return ann, snn.set_T(args.T).eval(), f"SNN loaded from {args.snn} (T={args.T})"
    origin = (f"SNN converted here from the robust CPU-preset ANN ({args.ann}) with conversion.convert(T={args.T}, "
              f"T_c={args.T_c}, n_batches={args.calib_batches}, rho=99.7, lam=0.3), BN statistics re-estimated on "
              f"spiking data, NOT finetuned")
    if run.has('snn'):
        snn = fresh(); snn.load_state_dict(run.load('snn')['model'])
        return ann, snn.set_T(args.T).eval(), origin
    from robustsparsesnn.conversion import convert
    t = time.time()
    snn = convert(ann, data.train, T=args.T, T_c=args.T_c, n_batches=args.calib_batches).eval()
    run.save('snn', {'model': snn.state_dict()}, meta=dict(origin=origin, seconds=time.time() - t))
    return ann, snn, origin


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--out', default='runs/cpu_evaluation', help='run folder (resumable)')
    p.add_argument('--ann', default=ANN, help='the robust CPU-preset ANN checkpoint')
    p.add_argument('--data', default='fashion-mnist', help="the data set (fashion-mnist or cifar10-jpeg)")
    p.add_argument('--snn', default=None, help='a converted/finetuned SNN checkpoint; default: convert the ANN here')
    p.add_argument('--T', type=int, default=8, help='SNN time steps')
    p.add_argument('--T-c', dest='T_c', type=int, default=16, help='calibration time steps when converting here')
    p.add_argument('--calib-batches', type=int, default=4, help='calibration batches (of 64) when converting here')
    p.add_argument('--n', type=int, default=200, help='test samples of the report')
    p.add_argument('--n-a1', type=int, default=200, help='test samples of Table A1 and the eps=64/255 check')
    p.add_argument('--apgd-steps', type=int, default=20, help='APGD iterations (the paper: 100)')
    p.add_argument('--pgd-steps', type=int, default=10, help='PGD / PGD_ens / RGA steps')
    p.add_argument('--queries', type=int, nargs='*', default=[500, 1000, 5000], help='Square query budgets')
    p.add_argument('--no-ann', action='store_true', help='skip the ANN column')
    p.add_argument('--sanity', action='store_true', help='also run the sanity checks')
    p.add_argument('--n-sanity', type=int, default=100, help='test samples of the sanity checks')
    p.add_argument('--batch-size', type=int, default=100)
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--device', default=None, help="'cuda' or 'cpu' (default: cuda when present)")
    p.add_argument('--data-file', default=None, help='a save_state file with test tensors x, y (instead of the data set; needs --snn)')
    p.add_argument('--seed', type=int, default=0)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    t_start = time.time()
    config = {k: v for k, v in vars(args).items() if k not in ('threads', 'sanity', 'n_sanity', 'device', 'data_file')}
    dev = get_device(args.device)
    run = RunDir(args.out, config=config, seed=args.seed)
    seed_everything(args.seed)
    if args.data_file:
        if not args.snn: raise SystemExit('--data-file needs --snn (converting needs the training data)')
        t = load_state(args.data_file); xs, ys = t['x'], t['y']
        data = SimpleNamespace(spec=SimpleNamespace(mean=tuple(t['mean'].tolist()), std=tuple(t['std'].tolist()), in_channels=xs.shape[1]))
    else:
        data = get_loaders(args.data, batch_size=128, n_train=10_000, n_val=1_000, n_test=1_000, seed=0)
        xs, ys = map(torch.cat, zip(*data.test))
    ann, snn, origin = build_snn(args, data, run)
    ann, snn, xs, ys = ann.to(dev), snn.to(dev), xs.to(dev), ys.to(dev)
    origin += f"; evaluated on {dev}" + (f" ({torch.cuda.get_device_name(dev)})" if dev.type == 'cuda' else '')
    print(origin, flush=True)
    results = run.load_json('results.json') if run.file('results.json').exists() else {}
    results['origin'] = origin
    def save(): run.save_json('results.json', results)

    # Table A1: every member alone (FGSM, 8/255) and the sequential ensemble, on the same samples and seed
    if 'table_a1' not in results:
        x, y = xs[:args.n_a1], ys[:args.n_a1]
        ens, t = EnsembleAttack('fgsm', eps=8/255, seed=args.seed), time.time()
        every = ens.run(snn, x, y, scheme='every', desc='Table A1: every member alone')
        seq = ens.run(snn, x, y, scheme='sequential', desc='Table A1: sequential')
        results['table_a1'] = dict(n=len(y), clean=seq.clean_acc, ensemble_sequential=seq.robust_acc,
                                   ensemble_every=every.robust_acc, same_robust_set=bool(torch.equal(seq.robust, every.robust)),
                                   members={m: dict(robust_alone=float(every.member_robust[k]),
                                                    broke_alone=int(every.member_broken[k]),
                                                    broke_first_in_sequence=int(seq.member_broken[k]))
                                            for k, m in enumerate(seq.members)},
                                   seconds=round(time.time() - t, 1))
        save()
    a1 = results['table_a1']
    print(f"Table A1 (FGSM, 8/255, n={a1['n']}): clean {a1['clean']:.1%}, FGSM_ens {a1['ensemble_sequential']:.1%}; "
          f"best single member {min(v['robust_alone'] for v in a1['members'].values()):.1%}", flush=True)

    if 'pgd_ens_64' not in results:
        x, y, t = xs[:args.n_a1], ys[:args.n_a1], time.time()
        r = EnsembleAttack('pgd', eps=64/255, steps=args.pgd_steps, seed=args.seed).run(snn, x, y, desc='PGD_ens at 64/255')
        results['pgd_ens_64'] = dict(n=len(y), clean=r.clean_acc, robust=r.robust_acc,
                                     member_broken=dict(zip(r.members, r.member_broken.tolist())),
                                     seconds=round(time.time() - t, 1))
        save()
    print(f"PGD_ens at 64/255: {results['pgd_ens_64']['robust']:.1%} robust (n={results['pgd_ens_64']['n']})", flush=True)

    x, y = xs[:args.n], ys[:args.n]
    done = results.get('report', {}).get('entries', {})
    def on_entry(key, entry, entries):
        results['report'] = dict(entries=entries); save()
        print(f"  {key}: {entry['robust']:.1%} ({entry['seconds']:.0f} s)", flush=True)
    rep = evaluation_report(snn, x, y, ann=None if args.no_ann else ann, pgd_steps=args.pgd_steps,
                            apgd_steps=args.apgd_steps, square_queries=args.queries, seed=args.seed,
                            batch_size=args.batch_size, done=done, on_entry=on_entry, desc='report')
    results['report'] = rep
    results['report_markdown'] = report_markdown(rep)
    save()
    print(results['report_markdown'], flush=True)

    if args.sanity and 'sanity' not in results:
        s = sanity_checks(snn, xs[:args.n_sanity], ys[:args.n_sanity], seed=args.seed, batch_size=args.batch_size)
        results['sanity'] = s; results['sanity_markdown'] = sanity_markdown(s)
        save()
    if 'sanity' in results: print(results['sanity_markdown'], flush=True)
    results.setdefault('wall_clock_s', {})[time.strftime('%Y-%m-%dT%H:%M:%S')] = round(time.time() - t_start)
    save()
    print(f"wall-clock {time.time() - t_start:.0f} s; results in {run.file('results.json')}", flush=True)
    return results


if __name__ == '__main__': main()
