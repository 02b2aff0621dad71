"""Cost of the whole SNN evaluation against PGD_ens alone: `evaluation.evaluate_snn` with an attack suite (the report with every
attack and the per-sample worst case, then the gradient diagnostics) and PGD_ens alone, on the same samples.
The issue's target: the `standard` suite costs at most 3x PGD_ens alone on 1,000 images of the CPU-preset VGG-11.

    .venv/bin/python bench/bench_evaluation.py [--run runs/demo] [--n 1000] [--suite standard] [--out FILE.json]

With --run (a finished `rsnn run` directory; the default is the demo's) it evaluates that run's sparse SNN (VGG-11,
width 0.25, T = 8, Fashion-MNIST) with its sparse ANN as the transfer source; without one, a random VGG-11 (width
0.125, T = 4) on random 16x16 images labelled by its own predictions. --out saves the evaluation (the JSON that
`rsnn evaluate RUN --suite S --n N` writes beside the checkpoint, with the two timings added)."""
import argparse, json, time
from pathlib import Path

import torch

from robustsparsesnn.evaluation import ATTACK_SUITES, evaluate_snn, evaluation_report
from robustsparsesnn.models import exact_logits
from robustsparsesnn.models import vgg11
from robustsparsesnn.neurons import spiking_neurons


def setup(args):
    run = Path(args.run) if args.run else None
    if run is not None and (run/'snn.safetensors').exists():
        from robustsparsesnn.config import load_config
        from robustsparsesnn.stages import Context
        from robustsparsesnn.core import RunDir
        cfg = load_config(run/'config.toml')
        ctx = Context(cfg); ctx.run = RunDir(run, lock=False)
        x, y = ctx.test_set(args.n)
        return (ctx.model('snn', T=cfg.convert.T).eval(), ctx.model('sparse_ann').eval(), x, y,
                f"the sparse SNN of {run} ({cfg.model.arch}, width {cfg.model.width}, T = {cfg.convert.T}, {cfg.data.name})")
    torch.manual_seed(0)
    m = vgg11(num_classes=10, in_channels=1, width=0.125).eval()
    for _, n in spiking_neurons(m): n.threshold.data.fill_(0.5)
    x = torch.rand(args.n, 1, 16, 16)
    y = exact_logits(m.set_T(4), x).argmax(1)
    ann = vgg11(num_classes=10, in_channels=1, width=0.125).eval(); ann.load_state_dict(m.state_dict())
    return m, ann, x, y, 'a random VGG-11 (width 0.125, T = 4, thresholds 0.5) on random 16x16 images'


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--run', default='runs/demo', help='a finished run directory (its sparse SNN); missing: a random VGG-11')
    p.add_argument('--n', type=int, default=1000)
    p.add_argument('--suite', '--preset', default='standard', choices=list(ATTACK_SUITES),
                   help='a key of evaluation.ATTACK_SUITES (--preset: its old name, in the commands recorded in results/)')
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--out', help='save the evaluation and the timings as JSON here')
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    snn, ann, x, y, what = setup(args)
    print(f"{what}; {len(y)} test images, {torch.get_num_threads()} threads")
    t = time.perf_counter()
    base = evaluation_report(snn, x, y, eps=(8 / 255,), attacks=('pgd_ens',), square_queries=(), desc='PGD_ens alone')
    t_pgd = time.perf_counter() - t
    t = time.perf_counter()
    res = evaluate_snn(snn, x, y, ann=ann, suite=args.suite, desc=f'{args.suite} suite')
    t_all = time.perf_counter() - t
    rep, d = res['report'], res['diagnostics']
    print(f"\n{'what':<34} {'seconds':>8} {'robust %':>9}")
    print(f"{'PGD_ens alone':<34} {t_pgd:>8.0f} {100 * base['worst_case']['8/255']['robust']:>9.1f}")
    for e in rep['entries'].values():
        label = f"  {e['model']} {e['attack']}" + (f" ({e['queries']} q)" if e['queries'] else '')
        print(f"{label:<34} {e['seconds']:>8.0f} {100 * e['robust']:>9.1f}")
    print(f"{'  diagnostics (n = %d)' % d['n']:<34} {t_all - rep['seconds']:>8.0f}")
    print(f"{args.suite + ' suite, all':<34} {t_all:>8.0f} {100 * rep['worst_case']['8/255']['robust']:>9.1f}  (worst case)")
    print(f"\ncost of the {args.suite} suite / PGD_ens alone: {t_all / t_pgd:.2f}x (target for standard: <= 3x)")
    if args.out:
        from robustsparsesnn.core import atomic_path
        out = dict(command=f"python bench/bench_evaluation.py --run runs/{Path(args.run).name} --n {args.n} --threads {args.threads} "
                           f"--suite {args.suite}",
                   model=what.replace(str(args.run), f"runs/{Path(args.run).name}"), threads=torch.get_num_threads(),
                   # 'preset': the whole suite's seconds (the key the files in results/ and notebook 09 read)
                   seconds=dict(pgd_ens_alone=round(t_pgd, 1), preset=round(t_all, 1), ratio=round(t_all / t_pgd, 2)),
                   pgd_ens_alone=base['worst_case']['8/255'], **res)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(Path(args.out)) as tmp: tmp.write_text(json.dumps(out, indent=1) + '\n')


if __name__ == '__main__':
    main()
