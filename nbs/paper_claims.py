"""The paper's claims as checks on the result files of the reproduction commands.

Each check takes a result as its command wrote it and returns `Verdict`s: does the ordering the paper reports hold
at this scale, with the numbers behind the answer. The reproduction notebooks (12, 13) display them; this module
is not part of the package because it reads result files of scripts/, not the package's own objects.
"""
import json, math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path


@dataclass
class Verdict:
    "One claim of the paper, checked: `holds` and the sentence with the numbers."
    holds: bool
    claim: str
    def __str__(self): return f"**{'HOLDS' if self.holds else 'DOES NOT HOLD'}** at this scale: {self.claim}"
    def _repr_markdown_(self): return str(self)


def load(path):
    "A JSON result file, or None when its command has not been run on this machine."
    p = Path(path)
    return json.loads(p.read_text()) if p.exists() else None


def noise(p:float, n:int) -> float:
    "Two standard errors of the difference of two accuracies near `p`, each measured on `n` images."
    return 2 * math.sqrt(2 * max(p * (1 - p), 1 / n) / n)


def _margin(ours:dict, others:list, key:str) -> str:
    "The smallest margin of `ours` over `others` in `key`, next to the sampling noise of such a difference."
    m = min(ours[key] - o[key] for o in others)
    tol = noise(ours[key], ours['n'])
    return f"smallest margin {100 * m:+.1f} points, {'beyond' if abs(m) > tol else 'within'} two standard errors ({100 * tol:.1f})"

def figure1(final:dict) -> list:
    "Figure 1: conversion + finetuning beats both E2E baselines under PGD_ens, and on clean images."
    ours, e2e = final['conversion'], [final['e2e_random'], final['e2e_ann']]
    out = [Verdict(all(ours['pgd_ens'] > e['pgd_ens'] for e in e2e),
                   f"conversion + finetuning is more robust under PGD_ens than both E2E baselines "
                   f"({ours['pgd_ens']:.1%} vs {e2e[0]['pgd_ens']:.1%} / {e2e[1]['pgd_ens']:.1%}; {_margin(ours, e2e, 'pgd_ens')})."),
           Verdict(all(ours['clean'] > e['clean'] for e in e2e),
                   f"it is also more accurate on clean images ({ours['clean']:.1%} vs {e2e[0]['clean']:.1%} / "
                   f"{e2e[1]['clean']:.1%}; {_margin(ours, e2e, 'clean')}).")]
    if all('square' in r for r in (ours, *e2e)):
        out.append(Verdict(all(ours['square'] > e['square'] for e in e2e),
                           f"and under the black-box Square attack ({ours['square']:.1%} vs {e2e[0]['square']:.1%} / "
                           f"{e2e[1]['square']:.1%}, {ours['square_queries']} queries; {_margin(ours, e2e, 'square')})."))
    return out


def table1(ev:dict) -> list:
    "Table 1: attacks get stronger with eps; APGD-CE_ens is the strongest; Square is not stronger than white-box."
    E = {(e['model'], e['attack'], e['eps_label'], e['queries']): e['robust'] for e in ev['report']['entries'].values()}
    labels = sorted({l for (m, a, l, q) in E if m == 'snn' and q is None}, key=Fraction)
    white = {a: [E[('snn', a, l, None)] for l in labels] for a in ('FGSM_ens', 'PGD_ens', 'APGD-CE_ens', 'APGD-DLR_ens')
             if all(('snn', a, l, None) in E for l in labels)}
    square = max((q, r) for (m, a, l, q), r in E.items() if m == 'snn' and a == 'Square')[1]
    strongest = min(white, key=lambda a: white[a][-1])
    best = min(v[-1] for v in white.values())
    return [Verdict(all(all(x >= y for x, y in zip(v, v[1:])) for v in white.values()),
                    f"every white-box ensemble attack gets stronger (or stays) as eps grows ({' / '.join(labels)})."),
            Verdict(strongest == 'APGD-CE_ens',
                    f"APGD-CE_ens is the strongest white-box attack at {labels[-1]} (here: {strongest}; "
                    + ', '.join(f'{a} {v[-1]:.0%}' for a, v in white.items()) + ')'),
            Verdict(square >= best,
                    f"black-box Square (largest budget, {square:.0%}) is not stronger than the best white-box attack "
                    f"({best:.0%}), the paper's sign that the ensemble's gradients are not masked; where it is stronger, "
                    "the white-box numbers are upper bounds.")]


def table_a1(ev:dict) -> list:
    "Table A1: the FGSM ensemble beats each member; the naive member is not the strongest; 64/255 leaves ~0."
    a1 = ev['table_a1']
    members = sorted(a1['members'].items(), key=lambda kv: kv[1]['robust_alone'])
    naive = a1['members']['pwl:1']['robust_alone']
    out = [Verdict(a1['ensemble_sequential'] < members[0][1]['robust_alone'],
                   f"the ensemble ({a1['ensemble_sequential']:.1%}) is stronger than its strongest member "
                   f"({members[0][0]}, {members[0][1]['robust_alone']:.1%})."),
           Verdict(members[0][0] != 'pwl:1', f"the naive attack (pwl:1, {naive:.1%}) is not the strongest member.")]
    if 'pgd_ens_64' in ev:
        out.append(Verdict(ev['pgd_ens_64']['robust'] <= 0.02, f"and the sanity check of Carlini et al.: PGD_ens at "
                           f"64/255 leaves {ev['pgd_ens_64']['robust']:.1%}."))
    return out


def table_b3(ev:dict) -> list:
    "Table B3: robust accuracy barely moves from 7 to 40 PGD_ens iterations."
    steps = next((c['numbers'] for c in ev.get('sanity', {}).get('checks', []) if c['name'].startswith('more PGD_ens steps')), None)
    if not steps: return []
    accs = [v for _, v in sorted((int(k), v) for k, v in steps.items())]
    return [Verdict(max(accs) - min(accs) <= 0.05, 'robust accuracy stays within 5 points from 7 to 40 PGD_ens iterations: '
                    + ', '.join(f'{a:.0%}' for a in accs))]


def _cells(rows:list) -> dict: return {(r['method'], r['sparsity']): r for r in rows}


def figure2(rows:list) -> list:
    "Figure 2 / Table B1 (rows of `rsnn sweep`): moderate sparsity costs little; at 99% learned scores beat LWM, HARP best."
    c, out = _cells(rows), []
    dense, n = c.get(('dense', 0.0)), rows[0]['n_eval']
    if dense and all((m, 0.5) in c for m in ('lwm', 'hydra', 'harp')):
        tol = noise(dense['snn_pgd_ens_acc'], n)
        d50 = {m: c[(m, 0.5)]['snn_pgd_ens_acc'] - dense['snn_pgd_ens_acc'] for m in ('lwm', 'hydra', 'harp')}
        out.append(Verdict(all(d >= -tol for d in d50.values()),
                           f"50% sparsity costs no robustness beyond sampling noise (PGD_ens change vs dense: "
                           + ', '.join(f'{m.upper()} {100 * d:+.1f}' for m, d in d50.items())
                           + f" points; two standard errors: {100 * tol:.1f})."))
    if all((m, 0.99) in c for m in ('lwm', 'hydra', 'harp')):
        r = {m: c[(m, 0.99)] for m in ('lwm', 'hydra', 'harp')}
        fmt = lambda m: f"{m.upper()} {100 * r[m]['snn_clean_acc']:.1f} / {100 * r[m]['snn_pgd_ens_acc']:.1f}"
        out.append(Verdict(all(r[m][k] > r['lwm'][k] for m in ('hydra', 'harp') for k in ('snn_clean_acc', 'snn_pgd_ens_acc')),
                           f"at 99%, both learned-score methods beat LWM on clean and PGD_ens accuracy ("
                           + ', '.join(fmt(m) for m in r) + '; paper LWM 44.9 / 9.2, uniform 69.1 / 15.3, non-uniform 85.2 / 22.9).'))
        out.append(Verdict(all(r['harp'][k] >= r['hydra'][k] for k in ('snn_clean_acc', 'snn_pgd_ens_acc')),
                           f"at 99%, non-uniform sparsity (HARP) is the best of the three ({fmt('harp')} vs {fmt('hydra')})."))
    return out


def table3(rows:list) -> list:
    "Table 3 (rows of `rsnn sweep`): energy falls with sparsity; sparse SNNs spike about as much; uniform beats non-uniform at 90%."
    c, out = _cells(rows), []
    for m in ('hydra', 'harp', 'lwm'):
        curve = sorted((s, r['energy_ratio_vs_dense']) for (k, s), r in c.items() if k == m and r.get('energy_ratio_vs_dense'))
        if len(curve) > 1:
            out.append(Verdict(all(e > 1 for _, e in curve) and all(a[1] < b[1] for a, b in zip(curve, curve[1:])),
                               f"{m.upper()}: the estimated energy falls with every step of sparsity (E_dense / E: "
                               + ', '.join(f'{100 * s:g}% {e:.2f}' for s, e in curve) + ').'))
    spikes = [r['spike_ratio_vs_dense'] for r in rows if r['method'] != 'dense' and r.get('spike_ratio_vs_dense')]
    if spikes:
        out.append(Verdict(all(0.8 <= v <= 1.25 for v in spikes),
                           f"the sparse SNNs spike about as much as the dense one (#Spikes_dense / #Spikes from "
                           f"{min(spikes):.2f} to {max(spikes):.2f}; paper 0.87-0.96)."))
    if ('hydra', 0.9) in c and ('harp', 0.9) in c:
        u, nu = c[('hydra', 0.9)]['energy_ratio_vs_dense'], c[('harp', 0.9)]['energy_ratio_vs_dense']
        out.append(Verdict(u > nu, f"at 90%, uniform sparsity saves more energy than non-uniform ({u:.2f}x vs {nu:.2f}x; "
                           "paper 6.12x vs 2.15x)."))
    return out
