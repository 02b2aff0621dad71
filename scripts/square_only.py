"""Why do the gradient attacks miss the samples that only Square breaks? On the sparse SNN of a finished run, for the
samples of an evaluation (a JSON of `rsnn evaluate` or `bench/bench_evaluation.py --out`) that survived every white-box
attack but not Square:

1. Square is run again on them alone (a sample's draws are its own, so it finds the same point) and the exact SNN's
   margin z_y - max_{i != y} z_i is followed along the straight segment from the clean image to Square's point;
2. longer and other gradient attacks are tried on them: ASSG + SA-PGD with 200 and 1,000 iterations, ASSG with the
   triangle and rectangle shapes, SA-PGD with the training surrogate, each from its own random start;
3. the input gradient at the clean image is measured: its norm, and its cosine with Square's perturbation.

    .venv/bin/python scripts/square_only.py --run runs/demo --eval results/fashion-mnist/demo_snn_standard_n1000.json \\
        [--out results/fashion-mnist/demo_square_only.json]"""
import argparse, json, subprocess
from pathlib import Path

import torch
import torch.nn.functional as F

from robustsparsesnn.core import RunDir, atomic_path
from robustsparsesnn.pipeline import load_config, Context
from robustsparsesnn.attacks import make_attack, loss_grad, margin_loss
from robustsparsesnn.neurons import ASSG
from robustsparsesnn.evaluation import ASSGAttack, exact_logits, unpack_mask, robust_mask, using_mode, exact_mode


def only_square(report):
    n = report['settings']['n']
    ents = [e for e in report['entries'].values() if e['model'] == 'snn' and e['eps_label'] == '8/255']
    white = unpack_mask(report['correct_bits'], n)
    for e in ents:
        if e['attack'] != 'Square': white &= unpack_mask(e['robust_bits'], n)
    square = next(unpack_mask(e['robust_bits'], n) for e in ents if e['attack'] == 'Square')
    return (white & ~square).nonzero()[:, 0], white


def margins_along(snn, x, xs, y, steps=21):
    "The exact margin z_y - max other at x + t (xs - x), t = 0, 1/(steps-1), ..., 1 (one row per sample)."
    out = []
    for t in torch.linspace(0, 1, steps):
        z = exact_logits(snn, x + t * (xs - x))
        out.append(-margin_loss(z, y))
    return torch.stack(out, 1)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--run', default='runs/demo'); p.add_argument('--eval', required=True)
    p.add_argument('--out', default='results/fashion-mnist/demo_square_only.json')
    a = p.parse_args(argv)
    run = Path(a.run); cfg = load_config(run/'config.toml')
    ctx = Context(cfg); ctx.run = RunDir(run, lock=False)
    snn = ctx.model('snn', T=cfg.convert.T).eval()
    ev = json.loads(Path(a.eval).read_text())
    rep = ev['report'] if 'report' in ev else ev['sparse']          # rsnn evaluate / the bench, or a run's evaluation.json
    idx, white = only_square(rep)
    x, y = ctx.test_set(rep['settings']['n'])
    xo, yo = x[idx], y[idx]
    print(f"{len(idx)} samples only Square broke, of {int(white.sum())} white-box survivors: {idx.tolist()}")
    sq = make_attack('square', eps=8 / 255, n_queries=rep['settings']['square_queries'][0], seed=rep['settings']['seed'])
    xs = sq(snn, xo, yo)
    fooled = exact_logits(snn, xs).argmax(1) != yo
    path = margins_along(snn, xo, xs, yo)
    tries = {'ASSG + SA-PGD, 200 it': ASSGAttack('sa-pgd', steps=200), 'ASSG + SA-PGD, 1000 it': ASSGAttack('sa-pgd', steps=1000),
             'ASSG (triangle) + SA-PGD, 200 it': ASSGAttack('sa-pgd', steps=200, assg=ASSG('pwl')),
             'ASSG (rectangle) + SA-PGD, 200 it': ASSGAttack('sa-pgd', steps=200, assg=ASSG('rect')),
             'SA-PGD, pwl:1, 200 it': make_attack('sa-pgd', steps=200)}
    broke = {k: int((~robust_mask(snn, atk, xo, yo)).sum()) for k, atk in tries.items()}
    with using_mode(snn, exact_mode(snn)): _, g, _ = loss_grad(snn, xo, yo, lambda z, t, r: F.cross_entropy(z, t, reduction='none'))
    d = (xs - xo).flatten(1)
    cos = F.cosine_similarity(g.flatten(1), d, dim=1)
    ev_arg = f"runs/{run.name}/{Path(a.eval).name}" if Path(a.eval).resolve().parent == run.resolve() else a.eval
    out = dict(command=f"python scripts/square_only.py --run runs/{run.name} --eval {ev_arg}",
               commit=subprocess.run(['git', 'rev-parse', 'HEAD'], capture_output=True, text=True).stdout.strip() or None,
               n=rep['settings']['n'], white_box_survivors=int(white.sum()), only_square=idx.tolist(),
               square_again_fools=int(fooled.sum()), margin_clean=path[:, 0].tolist(), margin_at_square=path[:, -1].tolist(),
               margin_path=[[round(v, 4) for v in r] for r in path.tolist()], other_attacks_broke=broke,
               grad_norm=g.flatten(1).norm(dim=1).tolist(), grad_zero_fraction=(g.flatten(1) == 0).float().mean(1).tolist(),
               cos_grad_square=cos.tolist())
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(Path(a.out)) as tmp: tmp.write_text(json.dumps(out, indent=1) + '\n')
    print(json.dumps({k: v for k, v in out.items() if k != 'margin_path'}, indent=1))
    for r in path.tolist(): print(' '.join(f'{v:+.2f}' for v in r))


if __name__ == '__main__':
    main()
