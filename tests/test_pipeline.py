"The `rsnn` command end to end: the tiny pipeline, SIGKILL + resume, and bad input (exit 2, nothing written)."
import json, os, signal, subprocess, sys, time
from pathlib import Path

import pytest
import tomli_w

from robustsparsesnn.pipeline import TINY, config_to_dict, preset_config

RSNN = [sys.executable, '-c', 'import sys; from robustsparsesnn.pipeline import main; sys.exit(main())']
ENV = {**os.environ, 'RSNN_PROGRESS': '0', 'OMP_NUM_THREADS': '1'}


def rsnn(*args, **kw):
    return subprocess.run(RSNN + [str(a) for a in args], capture_output=True, text=True, env=ENV, timeout=600, **kw)


@pytest.fixture(scope='module')
def tiny_toml(tmp_path_factory):
    "The tiny preset with three SNN epochs on more images, so that a kill can land inside SNN finetuning."
    d = config_to_dict(preset_config('tiny'))
    d['snn_n_train'] = 512
    d['data']['n_train'] = 512
    d['snn_finetune']['epochs'] = 3
    p = tmp_path_factory.mktemp('cfg') / 'tiny.toml'
    p.write_text(tomli_w.dumps(d))
    return p


def test_whole_pipeline_under_a_minute(tmp_path):
    t0 = time.time()
    r = rsnn('run', 'tiny', '--run-dir', tmp_path / 'run')
    assert r.returncode == 0, r.stderr
    assert time.time() - t0 < 60
    m = json.loads((tmp_path / 'run' / 'metrics.json').read_text())
    for k in ('ann_clean_acc', 'ann_pgd_acc', 'snn_clean_acc', 'snn_pgd_ens_acc', 'eps', 'global_sparsity',
              'energy_ratio_vs_dense', 'spikes_per_sample', 'wall_clock_s'): assert k in m
    for f in ('config.toml', 'manifest.json', 'report.md', 'figures/spike_rates.png'): assert (tmp_path / 'run' / f).exists()


def test_sigkill_in_snn_finetuning_then_resume(tiny_toml, tmp_path):
    whole = tmp_path / 'whole'
    assert rsnn('run', tiny_toml, '--run-dir', whole).returncode == 0
    killed = tmp_path / 'killed'
    p = subprocess.Popen(RSNN + ['run', str(tiny_toml), '--run-dir', str(killed)], env=ENV,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (killed / 'snn-last.safetensors').exists() and time.time() < deadline and p.poll() is None: time.sleep(0.01)
    os.kill(p.pid, signal.SIGKILL); p.wait()
    before = json.loads((killed / 'stages.json').read_text())
    assert {'pretrain', 'prune', 'convert'} <= set(before) and 'snn_finetune' not in before, before
    r = rsnn('run', tiny_toml, '--run-dir', killed)
    assert r.returncode == 0, r.stderr
    assert '(done before, skipped)' in r.stdout
    after = json.loads((killed / 'stages.json').read_text())
    for s in ('pretrain', 'prune', 'convert'): assert after[s] == before[s]        # not redone
    m_whole = json.loads((whole / 'metrics.json').read_text())
    m_killed = json.loads((killed / 'metrics.json').read_text())
    m_whole.pop('wall_clock_s'); m_killed.pop('wall_clock_s')
    assert m_whole == m_killed


@pytest.mark.parametrize('toml,message', [
    ('[prune]\nsparsity = 1.5\n', '[prune] sparsity must be in [0, 1), got 1.5'),
    ('[pretrain]\neps = "abc"\n', '[pretrain] eps must be a number or a fraction like "8/255"'),
    ('[data]\nbatchsize = 4\n', 'unknown key [data] batchsize'),
])
def test_bad_config_exit_2_nothing_written(tmp_path, toml, message):
    (tmp_path / 'c.toml').write_text(toml)
    r = rsnn('run', tmp_path / 'c.toml', '--run-dir', tmp_path / 'run')
    assert r.returncode == 2 and r.stderr.startswith('rsnn: error: ') and message in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / 'run').exists()


def test_missing_config_and_foreign_run_dir(tmp_path):
    r = rsnn('run', tmp_path / 'nope.toml')
    assert r.returncode == 2 and 'nope.toml' in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert rsnn('run', 'tiny', '--run-dir', tmp_path / 'run').returncode == 0
    listing = sorted(p.name for p in (tmp_path / 'run').iterdir())
    (tmp_path / 'other.toml').write_text(tomli_w.dumps({**config_to_dict(preset_config('tiny')), 'prune': {'method': 'lwm', 'sparsity': 0.9}}))
    r = rsnn('run', tmp_path / 'other.toml', '--run-dir', tmp_path / 'run')
    assert r.returncode == 2 and 'another configuration' in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in (tmp_path / 'run').iterdir()) == listing


def test_help_on_every_command(capsys):
    from robustsparsesnn.pipeline import main
    for cmd in ([], ['run'], ['pretrain'], ['prune'], ['convert'], ['snn-finetune'], ['evaluate'], ['energy'],
                ['sweep'], ['report'], ['config']):
        with pytest.raises(SystemExit) as e: main(cmd + ['--help'])
        assert e.value.code == 0 and 'usage: rsnn' in capsys.readouterr().out
