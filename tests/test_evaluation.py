"Property tests of `robustsparsesnn.evaluation` (the notebook 09_evaluation holds the quick ones) and checks of the CPU run."
import json
from pathlib import Path

import pytest
import torch
from torch import nn
from hypothesis import given, settings, strategies as st, HealthCheck

from robustsparsesnn.evaluation import (EnsembleAttack, PassCounter, evaluation_report, exact_logits, model_T,
                                        sanity_checks, using_mode, at_T)
from robustsparsesnn.layers import MaskedConv2d, MaskedLinear
from robustsparsesnn.models import SpikingNet
from robustsparsesnn.neurons import ENSEMBLE_MODES, IFNeuron, Temporal

SETTINGS = settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
RESULTS = Path(__file__).parent.parent / 'runs' / 'cpu_evaluation' / 'results.json'


class Tiny(SpikingNet):
    def __init__(self, T=3, classes=4):
        super().__init__(1)
        self.body_ = nn.Sequential(MaskedConv2d(1, 4, 3, padding=1), IFNeuron(0.3), nn.AvgPool2d(2), nn.Flatten(),
                                   MaskedLinear(4 * 16, 16), IFNeuron(0.3), MaskedLinear(16, classes))
        self.set_T(T)
    def body(self, x): return self.body_(x)


def case(seed, n=6, T=3):
    "A random tiny SNN and inputs labelled with its own predictions (so every sample starts correct)."
    torch.manual_seed(seed)
    m = Tiny(T).eval()
    x = torch.rand(n, 1, 8, 8)
    return m, x, exact_logits(m, x).argmax(1)


def members(draw_idx):
    return tuple(ENSEMBLE_MODES[i] for i in sorted(set(draw_idx)))


ATTACK_KW = {'fgsm': {}, 'pgd': dict(steps=2), 'apgd-ce': dict(steps=3), 'apgd-dlr': dict(steps=3)}


@SETTINGS
@given(seed=st.integers(0, 1000), eps=st.sampled_from([0.0, 1 / 255, 8 / 255, 0.3, 1.0]),
       attack=st.sampled_from(sorted(ATTACK_KW)), idx=st.lists(st.integers(0, 18), min_size=1, max_size=4))
def test_schemes_agree_and_stay_in_ball(seed, eps, attack, idx):
    m, x, y = case(seed)
    ens = EnsembleAttack(attack, members=members(idx), eps=eps, seed=seed, **ATTACK_KW[attack])
    a, b = ens.run(m, x, y), ens.run(m, x, y, scheme='every')
    assert torch.equal(a.robust, b.robust) and torch.equal(a.broken_by, b.broken_by)
    for r in (a, b):
        assert (r.x_adv - x).abs().max() <= eps + 1e-6 and r.x_adv.min() >= 0 and r.x_adv.max() <= 1
        assert (b.member_robust >= r.robust_acc - 1e-9).all()          # the ensemble <= every member alone
    # a broken sample is misclassified at the returned point, a robust one comes back clean
    z = exact_logits(m, a.x_adv).argmax(1)
    assert ((z != y) | a.robust | ~a.correct).all()
    assert torch.equal(a.x_adv[a.robust], x[a.robust])


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 1000), idx=st.lists(st.integers(0, 18), min_size=2, max_size=4))
def test_sequential_never_costs_more(seed, idx):
    m, x, y = case(seed, n=8)
    ens = EnsembleAttack('pgd', members=members(idx), eps=0.1, steps=2, seed=seed)
    c = PassCounter(m); ens.run(c, x, y); seq = c.counts()
    c.zero(); ens.run(c, x, y, scheme='every'); every = c.counts()
    assert seq['forwards'] <= every['forwards']                # at most the same calls (members with no survivor skip)
    assert seq['backward_samples'] <= every['backward_samples']
    assert seq['forward_samples'] <= every['forward_samples']


def test_mode_T_and_flags_restored_on_error():
    m, x, y = case(0)
    m.train().set_mode('rect:2')
    class Boom(PassCounter):
        def forward(self, x):
            if self.forwards == 4: raise RuntimeError('boom')
            return super().forward(x)
    with pytest.raises(RuntimeError, match='boom'):
        EnsembleAttack('pgd', members=('relu', 'pwl:1'), steps=3).run(Boom(m), x, y)
    assert {str(t.mode) for t in m.modules() if isinstance(t, Temporal)} == {'rect:2'}
    assert all(t.training for t in m.modules())
    with pytest.raises(ValueError, match='boom'):
        with at_T(m, 0): raise ValueError('boom')
    assert model_T(m) == 3


def test_bad_input():
    m, x, y = case(0)
    with pytest.raises(ValueError, match="unknown ensemble member 'tanh'"): EnsembleAttack('pgd', members=('tanh',))
    with pytest.raises(ValueError, match='at least one member'): EnsembleAttack('pgd', members=())
    with pytest.raises(ValueError, match=r'eps .* \[0, 1\]'): EnsembleAttack('fgsm', eps=8)
    with pytest.raises(ValueError, match='unknown scheme'): EnsembleAttack('fgsm').run(m, x, y, scheme='naive')
    with pytest.raises(ValueError, match='T=0'): EnsembleAttack('fgsm')(m.set_T(0), x, y)
    with pytest.raises(ValueError, match='T=0'): evaluation_report(m, x, y)
    with pytest.raises(ValueError, match='T=0'): sanity_checks(m, x, y)


def test_report_resumes_and_skips_done_entries():
    m, x, y = case(1, n=8)
    kw = dict(eps=(4 / 255, 16 / 255), attacks=('fgsm_ens', 'rga'), square_queries=(5,), pgd_steps=1,
              members=('pwl:1', 'ste'))
    seen = []
    full = evaluation_report(m, x, y, ann=m, on_entry=lambda k, e, es: seen.append(k), **kw)
    assert len(full['entries']) == len(seen) == 2 * 2 + 1 + 2 + 1    # SNN: 2x2 + square; ANN: fgsm x2 + square
    part = {k: full['entries'][k] for k in seen[:3]}
    again = []
    res = evaluation_report(m, x, y, ann=m, done=part, on_entry=lambda k, e, es: again.append(k), **kw)
    assert again == seen[3:]
    assert {k: e['robust'] for k, e in res['entries'].items()} == {k: e['robust'] for k, e in full['entries'].items()}
    assert model_T(m) == 3                                            # the ANN column ran at T=0 and came back


@pytest.mark.skipif(not RESULTS.exists(), reason='run scripts/cpu_evaluation_report.py first')
def test_cpu_run_results():
    "The Must-show properties on the CPU-preset SNN, as measured by scripts/cpu_evaluation_report.py."
    r = json.loads(RESULTS.read_text())
    if 'table_a1' in r:
        a1 = r['table_a1']
        assert a1['same_robust_set']
        assert all(a1['ensemble_sequential'] <= v['robust_alone'] + 1e-9 for v in a1['members'].values())
    if 'pgd_ens_64' in r: assert r['pgd_ens_64']['robust'] <= 0.02
