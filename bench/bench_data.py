"""Time the data pipeline: first (decode) and cached loads of Fashion-MNIST and CIFAR-10 (JPEG), and loader throughput.

Run: .venv/bin/python bench/bench_data.py
The first load decodes into a fresh temporary cache (RSNN_CACHE), so it is a real first time even where the default
cache already exists. "cached" opens the safetensors file (memory-mapped); "cached + copy" also copies every byte into memory.
"""
import os, shutil, sys, tempfile, time

import torch

from robustsparsesnn.data import get_loaders
from robustsparsesnn.datasets import DATASETS
from robustsparsesnn.datafiles import find_data, load_dataset


def timed(f):
    t = time.perf_counter(); out = f(); return out, time.perf_counter() - t


def bench_load(name):
    try: src = find_data(name, download=False)
    except FileNotFoundError as e:
        print(f'{DATASETS[name].title}: skipped ({str(e).splitlines()[0]})'); return
    cache = tempfile.mkdtemp(prefix='rsnn-bench-cache-')
    old = os.environ.get('RSNN_CACHE'); os.environ['RSNN_CACHE'] = cache
    try:
        (x, y), first = timed(lambda: load_dataset(name, 'train', download=False))
        _, cached = timed(lambda: load_dataset(name, 'train', download=False))
        _, cached_read = timed(lambda: load_dataset(name, 'train', download=False)[0].clone())
        print(f'{DATASETS[name].title:16} train {tuple(x.shape)} from {src}\n'
              f'  first load (decode train+test, write cache): {first:6.2f} s\n'
              f'  cached load:                                 {cached:6.3f} s\n'
              f'  cached load + copy into memory (clone):      {cached_read:6.3f} s')
        dl = get_loaders(name, batch_size=128, download=False)
        threads = torch.get_num_threads()
        for nt in sorted({1, threads}):
            torch.set_num_threads(nt)
            n = 0; t = time.perf_counter()
            for xb, _ in dl.train: n += len(xb)
            dt = time.perf_counter() - t
            print(f'  train loader, augmented ({DATASETS[name].augment}), batch 128, {nt} CPU thread(s): '
                  f'{n / dt:,.0f} images/s ({dt:.2f} s per epoch)')
        torch.set_num_threads(threads)
    finally:
        if old is None: os.environ.pop('RSNN_CACHE')
        else: os.environ['RSNN_CACHE'] = old
        shutil.rmtree(cache, ignore_errors=True)


if __name__ == '__main__':
    print(f'torch {torch.__version__}, python {sys.version.split()[0]}, {os.cpu_count()} CPUs, '
          f'load average {os.getloadavg()[0]:.1f} (other work on the machine slows the loader numbers)')
    for name in ('fashion-mnist', 'cifar10-jpeg'): bench_load(name)
