"A training script run in a subprocess, to completion or killed with SIGKILL at a chosen point (kill/resume tests)."
import os, random, signal, subprocess, sys, time

import torch

from robustsparsesnn.core import load_state


def run_script(script:str, folder, checkpoint:str=None, kill_after:float=None, timeout:float=900):
    """Run `script` (argv[1] = `folder`) to completion, or, with `kill_after`, SIGKILL it `kill_after` seconds after
    `folder/checkpoint` first appears (the end of its first epoch)."""
    p = subprocess.Popen([sys.executable, '-c', script, str(folder)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env={**os.environ, 'RSNN_PROGRESS': '0'})
    if kill_after is None:
        out, err = p.communicate(timeout=timeout)
        assert p.returncode == 0 and 'done' in out, err[-2000:]
        return
    deadline = time.time() + timeout
    while not (folder / checkpoint).exists() and time.time() < deadline and p.poll() is None: time.sleep(0.05)
    time.sleep(kill_after)
    os.kill(p.pid, signal.SIGKILL); p.wait()


def kill_resume_matches(script:str, tmp_path, checkpoint:str, epochs:int):
    "Run whole; run again, kill it mid-run and resume it: the final states agree bit for bit. Returns the whole run's state."
    run_script(script, tmp_path / 'whole')
    whole = load_state(tmp_path / 'whole' / checkpoint)
    t_epoch = whole['history'][-1]['seconds']
    rng = random.Random(os.getpid())
    run_script(script, tmp_path / 'killed', checkpoint, kill_after=rng.uniform(0.1, 1.8) * t_epoch)  # in epochs 2-3
    partial = load_state(tmp_path / 'killed' / checkpoint)
    assert 1 <= partial['epoch'] < epochs, f"the kill should land mid-run, it landed after epoch {partial['epoch']}"
    run_script(script, tmp_path / 'killed')
    resumed = load_state(tmp_path / 'killed' / checkpoint)
    assert resumed['epoch'] == epochs
    for k, v in whole['model'].items(): assert torch.equal(v, resumed['model'][k]), k
    return whole
