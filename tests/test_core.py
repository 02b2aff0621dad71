"Checkpoints survive a real crash: a writer killed with SIGKILL mid-write leaves the previous checkpoint intact."
import os, pickle, signal, subprocess, sys, textwrap

import pytest
import torch

from robustsparsesnn.core import RunDir, load_state, save_state

WRITER = textwrap.dedent("""
    import sys, time, torch
    import robustsparsesnn.core as core
    real_save_file = core.save_file
    def save_file_then_hang(tensors, filename, metadata=None):   # dies half-way through writing the file
        real_save_file(tensors, filename, metadata=metadata)
        data = open(filename, 'rb').read()
        open(filename, 'wb').write(data[:len(data) // 2])
        print('mid-write', flush=True)
        time.sleep(600)
    core.save_file = save_file_then_hang
    core.save_state(sys.argv[1], {'w': torch.arange(1_000_000, dtype=torch.float32)}, meta={'epoch': 2})
""")


def test_checkpoint_round_trip_bit_for_bit(tmp_path):
    g = torch.Generator().manual_seed(0)
    state = {'f32': torch.randn(5, 3, generator=g), 'f16': torch.randn(7, generator=g).half(),
             'bool': torch.rand(4, 4, generator=g) > 0.5, 'i64': torch.randint(-9, 9, (6,), generator=g),
             'nested': [{'a': 1, 'b': None, 'c': 'x'}, (2.5, torch.zeros(0))]}
    save_state(tmp_path / 's.safetensors', state)
    back = load_state(tmp_path / 's.safetensors')
    for k in ('f32', 'f16', 'bool', 'i64'):
        assert back[k].dtype == state[k].dtype and torch.equal(back[k], state[k])
    assert back['nested'][0] == state['nested'][0] and back['nested'][1][0] == 2.5
    assert back['nested'][1][1].shape == (0,) and set(back) == set(state)


def test_sigkill_during_write_keeps_previous_checkpoint(tmp_path):
    path = tmp_path / 'ckpt.safetensors'
    previous = {'w': torch.linspace(0, 1, 1000)}
    save_state(path, previous, meta={'epoch': 1})
    before = path.read_bytes()
    proc = subprocess.Popen([sys.executable, '-c', WRITER, str(path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == 'mid-write'
    assert len(list(tmp_path.glob('.ckpt.safetensors.*.tmp'))) == 1   # the half-written file exists...
    os.kill(proc.pid, signal.SIGKILL); proc.wait()                      # ...when the process is killed
    assert path.read_bytes() == before                                   # the previous checkpoint is untouched
    state, meta = load_state(path, with_meta=True)
    assert meta == {'epoch': 1} and torch.equal(state['w'], previous['w'])


def test_pickle_payload_is_refused_without_running(tmp_path):
    marker = tmp_path / 'payload-ran'
    class Payload:
        def __reduce__(self): return (os.system, (f'touch {marker}',))
    for name, data in [('raw.safetensors', pickle.dumps(Payload()))]:
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ValueError, match='pickle file'): load_state(tmp_path / name)
    torch.save({'x': torch.ones(1)}, tmp_path / 'torch.pt')
    with pytest.raises(ValueError, match='pickle file'): load_state(tmp_path / 'torch.pt')
    assert not marker.exists()


def test_run_dir_manifest(tmp_path):
    r = RunDir(tmp_path / 'run', config={'eps': 2 / 255}, seed=7)
    m = r.load_json('manifest.json')
    assert m['seed'] == 7 and m['config'] == {'eps': 2 / 255} and m['versions']['torch']
    with pytest.raises(ValueError, match='another configuration'): RunDir(tmp_path / 'run', config={'eps': 8 / 255})
