"Property tests and real-data checks of `robustsparsesnn.attacks` and `autoattack` (notebooks 04a and 04b hold the quick ones)."

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st, HealthCheck

from helpers import reference_check

from robustsparsesnn.attacks import FGSM, PGD, RFGSM, ce_loss, kl_loss, margin_loss, robust_accuracy
from robustsparsesnn.autoattack import ATTACKS, APGD, Square, apgd_checkpoints, make_attack, square_p

SETTINGS = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FAST = {'apgd-ce': dict(steps=6), 'apgd-dlr': dict(steps=6), 'square': dict(n_queries=25), 'pgd': dict(steps=3),
        'pgd-kl': dict(steps=3)}


def random_case(seed, b=4, c=2, h=6, w=6, classes=4, conv=False, binary_pixels=False):
    "A random model (MLP or small CNN) and random inputs in [0, 1] (some exactly 0 or 1), all from `seed`."
    torch.manual_seed(seed)
    body = [nn.Conv2d(c, 3, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(3 * h * w, classes)] if conv else \
           [nn.Flatten(), nn.Linear(c * h * w, 8), nn.Tanh(), nn.Linear(8, classes)]
    model = nn.Sequential(*body)
    x = torch.rand(b, c, h, w)
    if binary_pixels: x = (x > 0.5).float()
    return model, x, torch.randint(0, classes, (b,))


def in_ball(x_adv, x, eps):
    return bool((x_adv - x).abs().max() <= eps + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1)


@SETTINGS
@given(seed=st.integers(0, 10_000), eps=st.floats(0, 1), name=st.sampled_from(sorted(ATTACKS)),
       conv=st.booleans(), binary=st.booleans())
def test_every_attack_stays_in_ball_and_box(seed, eps, name, conv, binary):
    model, x, y = random_case(seed, conv=conv, binary_pixels=binary)
    x_adv = make_attack(name, eps=eps, seed=seed, **FAST.get(name, {}))(model, x, y)
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype and not x_adv.requires_grad
    assert in_ball(x_adv, x, eps)


@SETTINGS
@given(seed=st.integers(0, 10_000), eps=st.floats(0.001, 0.5), classes=st.integers(2, 6))
def test_fgsm_equals_closed_form_on_linear_model(seed, eps, classes):
    torch.manual_seed(seed)
    lin = nn.Linear(12, classes)
    x, y = torch.rand(5, 12), torch.randint(0, classes, (5,))
    with torch.no_grad():  # d CE / dx = (softmax(Wx + b) - onehot(y)) W
        g = (F.softmax(lin(x), 1) - F.one_hot(y, classes).float()) @ lin.weight
    expected = (x + eps * g.sign()).clamp(0, 1)
    x_adv = FGSM(eps)(lin, x, y)
    sure = g.abs() > 1e-5  # where float rounding cannot flip the sign
    assert torch.allclose(x_adv[sure], expected[sure], atol=1e-6)


@SETTINGS
@given(seed=st.integers(0, 10_000), eps=st.floats(0.01, 0.5), steps=st.integers(2, 8),
       loss=st.sampled_from(['ce', 'kl', 'margin']), start=st.sampled_from(['uniform', 'normal', 'none']))
def test_pgd_more_steps_never_lower_loss(seed, eps, steps, loss, start):
    "Same start (seed) and step size: the k-step run's iterates extend the 1-step run's, and PGD keeps the best."
    model, x, y = random_case(seed, conv=seed % 2 == 0)
    kw = dict(eps=eps, alpha=eps / 3, loss=loss, start=start, seed=seed)
    x1, xk = PGD(steps=1, **kw)(model, x, y), PGD(steps=steps, **kw)(model, x, y)
    with torch.no_grad():
        ref = model(x)
        l1, lk = (dict(ce=ce_loss, kl=kl_loss, margin=margin_loss)[loss](model(a), y, ref) for a in (x1, xk))
    assert (lk >= l1 - 1e-6).all(), (l1, lk)


@SETTINGS
@given(seed=st.integers(0, 10_000), eps=st.floats(0.01, 0.3))
def test_apgd_reaches_the_optimum_of_a_binary_linear_model(seed, eps):
    "For two classes and a linear model, the CE maximum over the box is the clipped corner x + eps sign(w_other - w_y)."
    torch.manual_seed(seed)
    lin = nn.Linear(10, 2)
    x, y = torch.rand(6, 10), torch.randint(0, 2, (6,))
    d = (lin.weight[1 - y] - lin.weight[y]).detach()
    corner = (x + eps * d.sign()).clamp(0, 1)
    x_adv = APGD(eps, steps=10, seed=seed)(lin, x, y)
    with torch.no_grad():
        fooled = lin(x_adv).argmax(1) != y
        best = ce_loss(lin(corner), y)
        got = ce_loss(lin(x_adv), y)
    assert (fooled | (got >= best - 1e-4)).all()


@SETTINGS
@given(seed=st.integers(0, 10_000), eps=st.floats(0.01, 0.5), nq=st.integers(2, 40))
def test_square_never_ends_below_its_start(seed, eps, nq):
    "Square keeps a candidate only if the margin loss improves, from the same (seeded) stripes start."
    model, x, y = random_case(seed, conv=True)
    a0, an = Square(eps, n_queries=1, seed=seed)(model, x, y), Square(eps, n_queries=nq, seed=seed)(model, x, y)
    with torch.no_grad(): l0, ln = margin_loss(model(a0), y), margin_loss(model(an), y)
    assert ((ln >= l0 - 1e-6) | (l0 > 0)).all()


def test_seeded_and_global_rng_untouched():
    model, x, y = random_case(0)
    for name in sorted(ATTACKS):
        state = torch.get_rng_state()
        a, b = (make_attack(name, eps=0.1, seed=3, **FAST.get(name, {})) for _ in range(2))
        xa, xb = a(model, x, y), b(model, x, y)
        assert torch.equal(xa, xb), name
        assert torch.equal(state, torch.get_rng_state()), f"{name} used the global generator"
        a.reset(); assert torch.equal(a(model, x, y), xa), name


def test_model_mode_is_restored_and_attack_runs_in_eval():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(36, 16), nn.Dropout(0.5), nn.BatchNorm1d(16), nn.Linear(16, 3))
    x, y = torch.rand(8, 1, 6, 6), torch.randint(0, 3, (8,))
    model.train(); model[2].eval()
    before = [m.training for m in model.modules()]
    stats = model[3].running_mean.clone()
    x1 = PGD(0.1, seed=1)(model, x, y)
    x2 = PGD(0.1, seed=1)(model, x, y)  # dropout off, BN statistics frozen: same result
    assert torch.equal(x1, x2)
    assert [m.training for m in model.modules()] == before
    assert torch.equal(stats, model[3].running_mean)
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize('make, msg', [
    (lambda: PGD(eps=-0.1), 'eps must be in [0, 1], got -0.1'),
    (lambda: FGSM(eps=1.5), 'eps must be in [0, 1], got 1.5'),
    (lambda: PGD(steps=0), 'steps must be an integer in 1..inf, got 0'),
    (lambda: APGD(steps=0), 'steps must be an integer in 1..inf, got 0'),
    (lambda: APGD(restarts=0), 'restarts must be an integer in 1..inf, got 0'),
    (lambda: Square(n_queries=0), 'n_queries must be an integer in 1..inf, got 0'),
    # counts are integers: a fraction is refused, never truncated; so are floats, bools and strings
    (lambda: make_attack('pgd', eps=8 / 255, steps=2.5), 'steps must be an integer in 1..inf, got 2.5'),
    (lambda: make_attack('pgd-kl', steps=-3), 'steps must be an integer in 1..inf, got -3'),
    (lambda: PGD(steps=10.0), 'steps must be an integer in 1..inf, got 10.0'),
    (lambda: PGD(steps=True), 'steps must be an integer in 1..inf, got True'),
    (lambda: APGD(steps='100'), "steps must be an integer in 1..inf, got '100'"),
    (lambda: APGD(restarts=1.5), 'restarts must be an integer in 1..inf, got 1.5'),
    (lambda: make_attack('apgd-dlr', restarts=-1), 'restarts must be an integer in 1..inf, got -1'),
    (lambda: Square(n_queries=-5), 'n_queries must be an integer in 1..inf, got -5'),
    (lambda: make_attack('square', n_queries=99.9), 'n_queries must be an integer in 1..inf, got 99.9'),
    (lambda: apgd_checkpoints(0), 'steps must be an integer in 1..inf, got 0'),
    (lambda: FGSM(seed=-1), 'seed must be an integer in 0..18446744073709551615, got -1'),
    (lambda: PGD(seed=2**64), 'seed must be an integer in 0..18446744073709551615, got 18446744073709551616'),
    (lambda: PGD(seed=0.5), 'seed must be an integer in 0..18446744073709551615, got 0.5'),
    (lambda: PGD().reset(1.5), 'seed must be an integer in 0..18446744073709551615, got 1.5'),
    (lambda: make_attack('fgsm', steps=10), "attack 'fgsm' has no setting 'steps'; valid: eps, loss, seed"),
    (lambda: make_attack('pgd-kl', loss='ce'), "attack 'pgd-kl' has no setting 'loss'; valid: eps, steps, alpha, seed"),
    (lambda: robust_accuracy(nn.Flatten(), FGSM(), (torch.rand(2, 3), torch.zeros(2).long()), batch_size=0),
     'batch_size must be an integer in 1..inf, got 0'),
    (lambda: robust_accuracy(nn.Flatten(), FGSM(), (torch.rand(2, 3), torch.zeros(2).long()), n=-1),
     'n must be an integer in 1..inf, got -1'),
    (lambda: robust_accuracy(nn.Flatten(), FGSM(), (torch.rand(2, 3), torch.zeros(2).long()), n=1.5),
     'n must be an integer in 1..inf, got 1.5'),
    (lambda: RFGSM(eps=0.1, alpha=0.2), 'alpha must be in [0, 0.1]'),
    (lambda: make_attack('cw'), "unknown attack 'cw'; valid: fgsm, rfgsm, pgd, apgd-ce, apgd-dlr, sa-pgd, square"),
    (lambda: PGD(loss='hinge'), "unknown loss 'hinge'; valid: ce, kl, dlr, margin"),
    (lambda: APGD(loss='kl'), "unknown loss 'kl'; valid: ce, dlr, margin"),
    (lambda: PGD(start='zero'), "unknown start 'zero'; valid: uniform, normal, none"),
])
def test_bad_settings(make, msg):
    with pytest.raises(ValueError) as e: make()
    assert msg in str(e.value)


@pytest.mark.parametrize('call, msg', [
    (lambda m, x, y: PGD()(lambda t: m(t)[:-1], x, y), 'model output must be logits of shape (B, classes) with B=4, got (3, 4)'),
    (lambda m, x, y: FGSM()(lambda t: m(t).sum(1), x, y), 'with B=4, got (4,)'),
    (lambda m, x, y: PGD()(m, x * 2, y), 'x must lie in [0, 1]'),
    (lambda m, x, y: PGD()(m, x, None), 'needs labels y'),
    (lambda m, x, y: PGD()(m, x, y[:2]), 'y must be integer labels of shape (4,)'),
    (lambda m, x, y: PGD()(m, x, y + 10), 'labels must lie in [0, 3]'),
    (lambda m, x, y: make_attack('apgd-dlr')(lambda t: m(t)[:, :2], x, y % 2), 'needs at least 3 classes'),
])
def test_bad_calls(call, msg):
    model, x, y = random_case(0)
    with pytest.raises(ValueError) as e: call(model, x, y)
    assert msg in str(e.value)


def test_kl_attacks_need_no_labels_and_move():
    model, x, _ = random_case(1)
    for name in ('pgd-kl', 'rfgsm-kl'):
        x_adv = make_attack(name, eps=0.1)(model, x)
        with torch.no_grad(): assert (kl_loss(model(x_adv), ref=model(x)) > 0).all(), name


def test_schedules():
    assert apgd_checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]
    assert apgd_checkpoints(1) == [1]
    assert [square_p(i, 10000) for i in (0, 10, 11, 50, 51, 9999)] == [0.8, 0.8, 0.4, 0.4, 0.2, 0.8 / 512]
    assert square_p(5, 1000) == 0.4  # rescaled: query 5 of 1000 is query 50 of 10,000


# ---------------------------------------------------------------- real data: Fashion-MNIST

@pytest.fixture(scope='module')
def fmnist():
    from robustsparsesnn.datafiles import load_dataset
    (xtr, ytr), (xte, yte) = (load_dataset('fashion-mnist', s, download=False) for s in ('train', 'test'))
    return xtr.float() / 255, ytr, xte.float() / 255, yte


def train(model, x, y, epochs, bs=128, lr=1e-3, seed=0):
    torch.manual_seed(seed)
    g, opt = torch.Generator().manual_seed(seed), torch.optim.Adam(model.parameters(), lr)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), bs):
            j = perm[i:i + bs]
            loss = F.cross_entropy(model(x[j]), y[j])
            opt.zero_grad(); loss.backward(); opt.step()
    return model.eval()


def small_cnn():
    return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(32 * 8 * 8, 128), nn.ReLU(), nn.Linear(128, 10))


def test_pgd_breaks_a_trained_model_at_large_eps(fmnist):
    "No gradient masking in the attack code: at eps = 64/255 PGD-10 leaves at most 1% robust accuracy."
    xtr, ytr, xte, yte = fmnist
    torch.manual_seed(0)
    model = train(nn.Sequential(nn.Flatten(), nn.Linear(32 * 32, 128), nn.ReLU(), nn.Linear(128, 10)),
                  xtr[:10000], ytr[:10000], epochs=2)
    res = robust_accuracy(model, make_attack('pgd', eps=64 / 255), (xte[:500], yte[:500]))
    assert res['clean'] > 0.75 and res['robust'] <= 0.01, res
    loader = [(xte[i:i + 100], yte[i:i + 100]) for i in range(0, 500, 100)]  # an iterable of batches agrees
    res2 = robust_accuracy(model, make_attack('fgsm', eps=2 / 255), loader, n=300)
    res3 = robust_accuracy(model, make_attack('fgsm', eps=2 / 255), (xte[:300], yte[:300]), batch_size=64)
    assert res2['n'] == 300 and torch.equal(res2['robust_mask'], res3['robust_mask'])
    assert res2['robust'] <= res2['clean']


@pytest.mark.slow
def test_agrees_with_reference_implementations(fmnist):
    """APGD-CE, APGD-DLR and Square against pyautoattack and torchattacks (the `test-ref` extra):
    robust accuracy within 1 percentage point on 500 test samples of a small CNN, same seed."""
    import importlib.util
    refs = tuple(r for r in ('pyautoattack', 'torchattacks') if importlib.util.find_spec(r))
    if not refs: pytest.skip("no reference implementation installed (pip install -e '.[test-ref]')")
    xtr, ytr, xte, yte = fmnist
    model = train(small_cnn(), xtr, ytr, epochs=2)
    rows = reference_check(model, xte[:500], yte[:500], eps=8 / 255, steps=100, n_queries=1000, seed=0, refs=refs)
    for r in rows: print(r)
    for r in rows: assert r['max |diff|'] <= 1.0, r
