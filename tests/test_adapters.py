"""`rsnn evaluate MODULE:FUNCTION --data NAME`: a network of another framework, defined in a module of one's own, evaluated
from the command line like a run's SNN; bad entry points stopped with one line."""
import json, textwrap

import pytest

from robustsparsesnn import cli

pytest.importorskip('snntorch')

MODULE = textwrap.dedent('''
    import torch
    import torch.nn.functional as F
    from torch import nn
    import snntorch
    from robustsparsesnn.adapters import ForeignSNN, adapt
    from robustsparsesnn.datafiles import load_dataset

    def tiny():
        "A two-layer snnTorch network, trained for 40 steps on the synthetic data set (3 x 32 x 32, 10 classes)."
        torch.manual_seed(0)
        leaky = lambda: snntorch.Leaky(beta=1.0, threshold=0.5, reset_mechanism='zero', init_hidden=True)
        net = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), leaky(), nn.AvgPool2d(4), nn.Flatten(), nn.Linear(128, 10))
        x, y = load_dataset('synthetic', 'train')
        model, opt = ForeignSNN(net, 4), torch.optim.Adam(net.parameters(), lr=1e-2)
        for i in range(40):
            b = torch.randint(0, len(y), (64,))
            opt.zero_grad(); F.cross_entropy(model(x[b].float() / 255), y[b]).backward(); opt.step()
        return adapt(net.eval(), 4, x[:2].float() / 255)

    def not_a_model(): return 42
''')


@pytest.fixture
def here(tmp_path, monkeypatch):
    (tmp_path/'mymodels.py').write_text(MODULE)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_evaluate_entry_point(here, capsys):
    assert cli.main(['evaluate', 'mymodels:tiny', '--data', 'synthetic', '--n', '20', '--suite', 'quick', '--out', 'ev.json']) == 0
    ev = json.loads((here/'ev.json').read_text())
    assert ev['entry'] == 'mymodels:tiny' and ev['n'] == 20 and ev['report']['settings']['n'] == 20
    assert ev['report']['settings']['skipped'] == {'members': ['bptr', 'relu'], 'attacks': ['assg_sapgd']}
    assert sorted(e['attack'] for e in ev['report']['entries'].values()) == ['PGD_ens', 'Square']
    assert ev['report']['clean']['snn'] > 0.5                                    # trained: the attacks have work
    assert 0 <= ev['report']['worst_case']['8/255']['robust'] <= ev['report']['clean']['snn']
    assert ev['diagnostics']['attack'] == 'SA-PGD through pwl:1'
    assert 'Left out' in (here/'ev.md').read_text() and not (here/'ev.json.partial').exists()


@pytest.mark.parametrize('args, says', [
    (['mymodels:tiny'], 'needs --data'),
    (['mymodels:nothing', '--data', 'synthetic'], "has no function 'nothing'"),
    (['nomodule:tiny', '--data', 'synthetic'], "cannot import 'nomodule'"),
    (['mymodels:not_a_model', '--data', 'synthetic'], 'returned int, not a spiking network'),
    (['mymodels:tiny', '--data', 'cifar11'], "unknown data set 'cifar11'"),
])
def test_bad_entry_points_say_one_line(here, capsys, args, says):
    assert cli.main(['evaluate', *args, '--n', '4']) == 2
    err = capsys.readouterr().err
    assert says in err and err.count('\n') == 1, err
