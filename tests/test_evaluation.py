"Property tests of `robustsparsesnn.ensembles`, `diagnostics` and `evaluation` (notebooks 09a-09d hold the quick ones)."
import numpy as np
import pytest
import torch
from torch import nn
from hypothesis import given, settings, strategies as st, HealthCheck

from robustsparsesnn.evaluation import check_report_settings, evaluation_report
from robustsparsesnn.ensembles import EnsembleAttack, PassCounter, check_eval_attack, eval_attack
from robustsparsesnn.diagnostics import sanity_checks
from robustsparsesnn.layers import MaskedConv2d, MaskedLinear
from robustsparsesnn.models import SpikingNet
from robustsparsesnn.surrogates import ENSEMBLE_MODES
from robustsparsesnn.neurons import IFNeuron, Temporal, model_T, model_state
from robustsparsesnn.models import exact_logits

SETTINGS = settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])


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
        with model_state(m, T=0): raise ValueError('boom')
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


# Evaluation settings: checked before the first attack (a bad value at the end of a list fails before the
# first entry), with one message naming the value and what is valid.
BAD_REPORT = [
    (dict(attacks=('pgd_ens', 'cw')), "unknown SNN attack 'cw'; valid: fgsm_ens, pgd_ens, apgd-dlr_ens, apgd-ce_ens, rga"),
    (dict(attacks='pgd'), "unknown SNN attack 'pgd'"),
    (dict(attacks=('square',)), 'Square runs at each of square_queries'),
    (dict(eps=(2 / 255, 1.5)), 'must be in [0, 1], got 1.5'),
    (dict(eps=float('nan')), 'must be in [0, 1], got nan'),
    (dict(eps=()), 'eps needs at least one budget'),
    (dict(square_queries=(500, 1000, 0)), 'each of square_queries must be an integer in 1..inf, got 0'),
    (dict(square_queries=(500, -1)), 'each of square_queries must be an integer in 1..inf, got -1'),
    (dict(square_queries=(2.5,)), 'each of square_queries must be an integer in 1..inf, got 2.5'),
    (dict(square_queries=(1000.0,)), 'each of square_queries must be an integer in 1..inf, got 1000.0'),
    (dict(square_eps=2), 'square_eps (L_inf budget in [0, 1] image units, e.g. 8/255) must be in [0, 1], got 2'),
    (dict(pgd_steps=0), 'pgd_steps must be an integer in 1..inf, got 0'),
    (dict(pgd_steps=10.5), 'pgd_steps must be an integer in 1..inf, got 10.5'),
    (dict(apgd_steps=-100), 'apgd_steps must be an integer in 1..inf, got -100'),
    (dict(apgd_steps=True), 'apgd_steps must be an integer in 1..inf, got True'),
    (dict(members=()), 'an ensemble needs at least one member'),
    (dict(members=('pwl:1', 'tanh')), "unknown ensemble member 'tanh'"),
    (dict(seed=-1), 'seed must be an integer in 0..4294967295, got -1'),
    (dict(seed=2**32), 'seed must be an integer in 0..4294967295, got 4294967296'),
    (dict(batch_size=0), 'batch_size must be an integer in 1..inf, got 0'),
]


@pytest.mark.parametrize('kw, msg', BAD_REPORT)
def test_report_settings_checked_before_any_attack(kw, msg):
    with pytest.raises(ValueError) as e: check_report_settings(**kw)
    assert msg in str(e.value)
    m, x, y = case(0)
    c = PassCounter(m)
    with pytest.raises(ValueError) as e: evaluation_report(c, x, y, ann=c, **kw)
    assert msg in str(e.value)
    assert c.forwards == 0                                              # nothing ran


@pytest.mark.parametrize('call, msg', [
    (lambda: check_eval_attack('cw'), "unknown evaluation attack 'cw'; valid: fgsm_ens, pgd_ens"),
    (lambda: check_eval_attack('PGD_ens'), "unknown evaluation attack 'PGD_ens'"),
    (lambda: check_eval_attack('square', 0), 'n_queries must be an integer in 1..inf, got 0'),
    (lambda: check_eval_attack('square', 12.5), 'n_queries must be an integer in 1..inf, got 12.5'),
    (lambda: eval_attack('square', n_queries=-5), 'n_queries must be an integer in 1..inf, got -5'),
    (lambda: eval_attack('pgd', steps=0), 'steps must be an integer in 1..inf, got 0'),
    (lambda: eval_attack('apgd-ce_ens', steps=2.5), 'steps must be an integer in 1..inf, got 2.5'),
    (lambda: eval_attack('rga', seed=-1), 'seed must be an integer in 0..'),
    (lambda: EnsembleAttack('pgd', steps=1.5), 'steps must be an integer in 1..inf, got 1.5'),
    (lambda: EnsembleAttack('apgd-ce', restarts=0), 'restarts must be an integer in 1..inf, got 0'),
    (lambda: EnsembleAttack('fgsm', steps=3), "attack 'fgsm' has no setting 'steps'"),
    (lambda: EnsembleAttack('fgsm').reset(0.5), 'seed must be an integer in 0..'),
    (lambda: check_report_settings(n=0), 'n must be an integer in 1..inf, got 0'),
    (lambda: evaluation_report(case(0)[0], case(0)[1][:0], case(0)[2][:0]), 'x is empty'),
    (lambda: evaluation_report(case(0)[0], case(0)[1], case(0)[2][:2]), 'x and y differ in length: 6 images, 2 labels'),
    (lambda: sanity_checks(case(0)[0], case(0)[1], case(0)[2], steps=(7, 0)), 'each of steps must be an integer in 1..inf, got 0'),
    (lambda: sanity_checks(case(0)[0], case(0)[1], case(0)[2], n_queries=1.5), 'n_queries must be an integer in 1..inf, got 1.5'),
    (lambda: sanity_checks(case(0)[0], case(0)[1], case(0)[2], seed=-3), 'seed must be an integer in 0..4294967295, got -3'),
    (lambda: sanity_checks(case(0)[0], case(0)[1], case(0)[2], eps_sweep=()), "check 'large_eps' needs eps_sweep"),
    (lambda: sanity_checks(case(0)[0], case(0)[1], case(0)[2], batch_size=-1), 'batch_size must be an integer in 1..inf, got -1'),
])
def test_bad_counts(call, msg):
    with pytest.raises(ValueError) as e: call()
    assert msg in str(e.value)


def test_report_settings_normalised():
    "One number or one name is a one-element tuple; 0 or () skips Square; NumPy integers become ints."
    s = check_report_settings(eps=8 / 255, attacks='rga', square_queries=0, pgd_steps=np.int64(3), members='pwl:1')
    assert s == dict(eps=(8 / 255,), attacks=('rga',), square_queries=(), square_eps=8 / 255, pgd_steps=3, apgd_steps=100,
                     members=('pwl:1',), seed=0, batch_size=100, assg_steps=100)
    assert type(s['pgd_steps']) is int


@SETTINGS
@given(seed=st.integers(0, 1000), sizes=st.lists(st.integers(1, 9), min_size=1, max_size=3),
       name=st.sampled_from(['pgd_ens', 'rga', 'assg_sapgd', 'square']))
def test_robust_masks_do_not_depend_on_batching(seed, sizes, name):
    "The same samples give the same per-sample result in batches of any size (random draws belong to the sample)."
    m, x, y = case(seed, n=9)
    m.double(); x = x.double()
    atk = eval_attack(name, 8 / 255, steps=2, n_queries=8, members=ENSEMBLE_MODES[:2], seed=seed)
    from robustsparsesnn.ensembles import _batched_mask
    whole = _batched_mask(m, atk, x, y, 9)
    for bs in sizes: assert torch.equal(_batched_mask(m, atk, x, y, bs), whole), bs


@SETTINGS
@given(seed=st.integers(0, 1000), k=st.integers(1, 3))
def test_worst_case_is_the_and_of_every_attack(seed, k):
    "The worst case never exceeds any attack's robust accuracy; it is the per-sample AND of their masks."
    from robustsparsesnn.statistics import unpack_mask
    m, x, y = case(seed, n=8)
    rep = evaluation_report(m, x, y, eps=(8 / 255,), attacks=('fgsm_ens', 'rga', 'assg_sapgd')[:k], square_queries=(6,),
                            pgd_steps=1, assg_steps=2, members=('pwl:1',))
    n, wc = len(y), rep['worst_case']['8/255']
    masks = [unpack_mask(e['robust_bits'], n) for e in rep['entries'].values()]
    assert wc['robust'] == torch.stack(masks).all(0).float().mean().item()
    assert all(wc['robust'] <= e['robust'] for e in rep['entries'].values())
    assert sum(wc['broken_only_by'].values()) <= n


@SETTINGS
@given(seed=st.integers(0, 1000), q=st.integers(1, 12), how=st.sampled_from(['square', 'all']))
def test_the_cascade_gives_the_same_worst_case(seed, q, how):
    """AutoAttack's cascade (Square only on the white-box survivors, or every attack after the first only on what the
    ones before it left robust) leaves the worst case unchanged, sample by sample, in float64."""
    m, x, y = case(seed, n=8)
    m.double(); x = x.double()
    kw = dict(eps=(8 / 255,), attacks=('fgsm_ens', 'rga', 'assg_sapgd'), square_queries=(q,), pgd_steps=1, assg_steps=2,
              members=('pwl:1',))
    full = evaluation_report(m, x, y, **kw)['worst_case']['8/255']
    cascade = evaluation_report(m, x, y, **(dict(square_on='survivors') if how == 'square' else dict(cascade=True)),
                                **kw)['worst_case']['8/255']
    assert cascade['robust_bits'] == full['robust_bits']
    assert cascade['gap']['only_square'] == full['gap']['only_square']
    assert cascade['cascaded'] == (['Square (%d q)' % q] if how == 'square' else ['RGA', 'ASSG+SA-PGD', 'Square (%d q)' % q])
