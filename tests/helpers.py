"""Fixtures and checks the tests share, kept out of the package's API: IDX files for fake MNIST-format data sets, and
the comparison of our APGD-CE, APGD-DLR and Square with two independent implementations (the `test-ref` extra)."""
import gzip
import time

import torch
from torch import Tensor

from robustsparsesnn.core import check_choice
from robustsparsesnn.attacks import eval_mode, logits_of
from robustsparsesnn.autoattack import ATTACKS, make_attack


def write_idx(path, data:Tensor):
    "Write `data` (uint8 labels (N,) or images (N, H, W)) as an IDX file, the MNIST format; gzipped when `path` ends in .gz."
    head = bytes([0, 0, 0x08, data.dim()]) + b''.join(int(d).to_bytes(4, 'big') for d in data.shape)
    blob = head + data.to(torch.uint8).contiguous().numpy().tobytes()
    (gzip.open if str(path).endswith('.gz') else open)(path, 'wb').write(blob)


def _ref_pyautoattack(model, name, eps, steps, n_queries, seed):
    from pyautoattack.autopgd_base import APGDAttack
    from pyautoattack.square import SquareAttack
    if name == 'square':
        return SquareAttack(model, norm='Linf', n_queries=n_queries, eps=eps, p_init=0.8, seed=seed, loss='margin').perturb
    return APGDAttack(model, norm='Linf', n_iter=steps, eps=eps, loss=ATTACKS[name].fixed['loss'], seed=seed,
                      n_restarts=1).perturb


def _ref_torchattacks(model, name, eps, steps, n_queries, seed):
    import torchattacks
    if name == 'square':
        return torchattacks.Square(model, norm='Linf', eps=eps, n_queries=n_queries, p_init=0.8, seed=seed, loss='margin')
    return torchattacks.APGD(model, norm='Linf', eps=eps, steps=steps, loss=ATTACKS[name].fixed['loss'], seed=seed,
                             n_restarts=1)


REFERENCES = dict(pyautoattack=_ref_pyautoattack, torchattacks=_ref_torchattacks)


def accuracy_pct(model, x, y) -> float:
    "Accuracy of `model` on (x, y) in percent, in eval mode."
    with torch.no_grad(), eval_mode(model): return 100 * (logits_of(model, x, y).argmax(1) == y).float().mean().item()


def reference_check(model, x:Tensor, y:Tensor, eps:float=8/255, steps:int=100, n_queries:int=1000, seed:int=0,
                    attacks=('apgd-ce', 'apgd-dlr', 'square'), refs=('pyautoattack', 'torchattacks')) -> list:
    """Robust accuracy (%) of our attacks and of the reference implementations on the same model, samples and seed:
    one dict per attack with each implementation's accuracy, its seconds and the largest difference to ours. Square
    is compared in the variant the references implement (`resample=False`); our default is shown beside it."""
    rows = []
    for name in attacks:
        check_choice('attack', name, ('apgd-ce', 'apgd-dlr', 'square'))
        kw = dict(n_queries=n_queries, resample=False) if name == 'square' else dict(steps=steps)
        t = time.perf_counter()
        row = dict(attack=name, ours=accuracy_pct(model, make_attack(name, eps=eps, seed=seed, **kw)(model, x, y), y))
        row['ours s'] = time.perf_counter() - t
        if name == 'square':
            row['ours, resample'] = accuracy_pct(model, make_attack(name, eps=eps, seed=seed, n_queries=n_queries)(model, x, y), y)
        for ref in refs:
            t = time.perf_counter()
            with eval_mode(model):
                x_adv = REFERENCES[check_choice('reference', ref, REFERENCES)](model, name, eps, steps, n_queries, seed)(x, y)
            row[ref], row[f'{ref} s'] = accuracy_pct(model, x_adv, y), time.perf_counter() - t
        row['max |diff|'] = max(abs(row['ours'] - row[r]) for r in refs)
        rows.append(row)
    return rows
