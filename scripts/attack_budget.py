"""Every attack on the sparse SNN of a finished run, each on every clean-correct sample, the per-sample worst case,
and PGD_ens against ASSG + SA-PGD at an equal forward/backward budget.

    .venv/bin/python scripts/attack_budget.py [--run runs/demo] [--n 500] [--out results/fashion-mnist/demo_attack_budget.json]

PGD_ens (19 members, 10 steps, each member on the survivors) runs first and its backward passes are counted per
sample (`evaluation.PassCounter`). Each other attack then gets the same number of backward samples: k iterations
on every clean-correct sample, k + 1 = budget / clean-correct. Four attacks separate the two changes of Wang et al.
(the optimiser and the surrogate): PGD with ASSG, SA-PGD with the training surrogate (pwl:1), and ASSG + SA-PGD.
Then the transfer attack from the run's sparse ANN (APGD-CE, 50 iterations) and Square (1,000 queries), both on every
clean-correct sample, so that each attack's robust accuracy is its own; the worst case is the AND of all six masks.
Every pair is compared on the same samples (exact McNemar). The small results file goes to --out."""
import argparse, json, subprocess, time
from pathlib import Path

import torch

from robustsparsesnn.core import RunDir, atomic_path
from robustsparsesnn.pipeline import load_config, Context
from robustsparsesnn.attacks import make_attack
from robustsparsesnn.evaluation import (EnsembleAttack, ASSGAttack, TransferAttack, PassCounter, exact_logits, wilson,
                                        mcnemar, pack_mask, _batched_mask)


def measure(name, snn, attack, x, y, batch_size=100):
    c = PassCounter(snn)
    t = time.perf_counter()
    rob = _batched_mask(c, attack, x, y, batch_size)
    k = int(rob.sum())
    return dict(attack=name, robust=k / len(y), interval=list(wilson(k, len(y))), seconds=round(time.perf_counter() - t, 1),
                **c.counts(), robust_bits=pack_mask(rob)), rob


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--run', default='runs/demo'); p.add_argument('--n', type=int, default=500)
    p.add_argument('--eps', type=float, default=8 / 255); p.add_argument('--seed', type=int, default=0)
    p.add_argument('--out', default='results/fashion-mnist/demo_attack_budget.json')
    a = p.parse_args(argv)
    run = Path(a.run); cfg = load_config(run/'config.toml')
    ctx = Context(cfg); ctx.run = RunDir(run, lock=False)
    snn = ctx.model('snn', T=cfg.convert.T).eval()
    x, y = ctx.test_set(a.n)
    correct = int((exact_logits(snn, x).argmax(1) == y).sum())
    rows, masks = [], {}
    r, masks['PGD_ens'] = measure('PGD_ens', snn, EnsembleAttack('pgd', eps=a.eps, steps=10, seed=a.seed), x, y)
    rows.append(r); print(r['attack'], r['robust'], r['backward_samples'], r['seconds'], flush=True)
    k_eq = k = max(1, round(r['backward_samples'] / correct) - 1)
    for name, atk in ((f'PGD + ASSG ({k} steps)', ASSGAttack('pgd', eps=a.eps, steps=k, seed=a.seed)),
                      (f'SA-PGD, pwl:1 ({k} steps)', make_attack('sa-pgd', eps=a.eps, steps=k, seed=a.seed)),
                      (f'ASSG + SA-PGD ({k} steps)', ASSGAttack('sa-pgd', eps=a.eps, steps=k, seed=a.seed))):
        r, masks[name] = measure(name, snn, atk, x, y)
        rows.append(r); print(r['attack'], r['robust'], r['backward_samples'], r['seconds'], flush=True)
    ann = ctx.model('sparse_ann').eval()
    for name, atk in (('Transfer (ANN, APGD-CE 50)', TransferAttack(ann, 'apgd-ce', eps=a.eps, steps=50, seed=a.seed)),
                      ('Square (1000 q)', make_attack('square', eps=a.eps, n_queries=1000, seed=a.seed))):
        r, masks[name] = measure(name, snn, atk, x, y)
        rows.append(r); print(r['attack'], r['robust'], r['forward_samples'], r['seconds'], flush=True)
    worst = torch.stack(list(masks.values())).all(0)
    only = {}
    for name, m in masks.items():
        others = torch.stack([mb for b, mb in masks.items() if b != name]).all(0)
        only[name] = int((others & ~m).sum())
    white = torch.stack([m for b, m in masks.items() if not b.startswith('Square')]).all(0)
    sq = masks['Square (1000 q)']
    gap = dict(white_box_union=int(white.sum()) / len(y), only_square=int((white & ~sq).sum()),
               only_white_box=int((sq & ~white).sum()))
    gap['p'] = mcnemar(gap['only_square'], gap['only_white_box'])
    k = int(worst.sum())
    worst_case = dict(robust=k / len(y), interval=list(wilson(k, len(y))), broken_only_by=only, robust_bits=pack_mask(worst),
                      square_vs_white_box=gap)
    names = list(masks)
    pairs = [dict(first=f, second=s, only_first_broke=int((masks[s] & ~masks[f]).sum()),
                  only_second_broke=int((masks[f] & ~masks[s]).sum()))
             for i, f in enumerate(names) for s in names[i + 1:]]
    for q in pairs: q['p'] = mcnemar(q['only_first_broke'], q['only_second_broke'])
    commit = subprocess.run(['git', 'rev-parse', 'HEAD'], capture_output=True, text=True).stdout.strip() or None
    out = dict(command=f"python scripts/attack_budget.py --run runs/{run.name} --n {a.n}", commit=commit, run=run.name,
               checkpoint='snn.safetensors', n=len(y), clean=correct / len(y), eps=a.eps, seed=a.seed, steps_at_equal_budget=k_eq,
               attacks=rows, worst_case=worst_case, paired=pairs)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(Path(a.out)) as tmp: tmp.write_text(json.dumps(out, indent=1) + '\n')
    for q in pairs: print(f"{q['first']} vs {q['second']}: only first broke {q['only_first_broke']}, only second "
                          f"{q['only_second_broke']}, p = {q['p']:.3g}")
    print(f"worst case {100 * worst_case['robust']:.1f}% (95% CI {100 * worst_case['interval'][0]:.1f}-"
          f"{100 * worst_case['interval'][1]:.1f}, n = {len(y)}); only by: {only}; Square vs white-box: {gap}")


if __name__ == '__main__':
    main()
