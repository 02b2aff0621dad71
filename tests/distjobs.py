"""Jobs that tests/test_distributed.py launches with torchrun (or as one plain process, the reference):
`python -m torch.distributed.run --standalone --nproc-per-node N tests/distjobs.py JOB OUT`. Rank 0 writes OUT/JOB.pt."""
import os, sys, time
from pathlib import Path

import torch
from torch import nn

from robustsparsesnn.core import RunDir, seed_everything
from robustsparsesnn.data import BatchLoader
from robustsparsesnn.distributed import init_from_env, world, gather, global_batch_norms, is_main
from robustsparsesnn.data import rank_slice
from robustsparsesnn.models import VGG
from robustsparsesnn.training import TrainConfig, fit


def bn_job():
    "GlobalBatchNorm2d on this rank's slice of one batch: outputs, input gradients and running statistics."
    torch.manual_seed(0)
    x = torch.randn(8, 3, 4, 4) * 2 + 1
    w = torch.randn(8, 3, 4, 4)
    net = nn.Sequential(nn.BatchNorm2d(3))
    rank, size = world()
    mine = rank_slice(8, rank, size)
    xs = x[mine].clone().requires_grad_()
    with global_batch_norms(net):
        y = net(xs)
        (y * w[mine]).sum().backward()
    return dict(y=gather(y.detach()), grad=gather(xs.grad), mean=net[0].running_mean, var=net[0].running_var)


class Slow:
    "A loader that waits a little before each batch (RSNN_TEST_SLOW seconds), so that a test can kill it mid-epoch."
    def __init__(self, loader): self.loader = loader
    def set_epoch(self, epoch): self.loader.set_epoch(epoch)
    def __len__(self): return len(self.loader)
    def __iter__(self):
        for batch in self.loader:
            time.sleep(float(os.environ.get('RSNN_TEST_SLOW', 0))); yield batch


def fit_job(out:Path):
    "Two epochs of TRADES on a tiny VGG and random data, checkpointed in OUT/run: the history and the final weights."
    seed_everything(0)
    rank, size = world()
    if rank != 0:                     # only rank 0 locks and writes: any write from another rank fails the job
        probe = RunDir(out/'probe')
        assert not probe.writes and probe._key is None
        def refuse(*a, **k): raise AssertionError(f'rank {rank} wrote to the run directory')
        RunDir.save = RunDir.save_json = refuse
    g = torch.Generator().manual_seed(1)
    images, labels = torch.randint(0, 256, (36, 2, 8, 8), dtype=torch.uint8, generator=g), torch.randint(0, 5, (36,), generator=g)
    aug = lambda x, gen: (x + 0.05 * torch.rand(x.shape, generator=gen)).clamp(0, 1)
    train = BatchLoader(images[:28], labels[:28], batch_size=8, shuffle=True, augment=aug, seed=3, rank=rank, size=size)
    loaders = type('L', (), dict(train=Slow(train), val=BatchLoader(images[28:], labels[28:], batch_size=8)))()
    model = VGG(((4,), (6, 6)), num_classes=5, in_channels=2, width=1.0)
    cfg = TrainConfig(objective='trades', eps=8/255, attack='pgd-kl', attack_steps=2, epochs=3, lr=0.05, eval_steps=2, eval_n=8)
    hist = fit(model, loaders, cfg, run=out/'run', name='tiny')
    return dict(loss=torch.tensor([h['train_loss'] for h in hist]), acc=torch.tensor([h['train_acc'] for h in hist]),
                val=torch.tensor([h['val_robust'] for h in hist]), weights=model.state_dict())


def invisible_job(out:Path):
    "The tiny pipeline on a relative run directory, each rank in a folder of its own: rank 1 cannot see what rank 0 made."
    from robustsparsesnn.config import preset_config
    from robustsparsesnn.pipeline import run_pipeline
    os.chdir(out/f'rank{world()[0]}')
    run_pipeline(preset_config('tiny'), 'runs/tiny', stages=('pretrain',), verbose=False)


if __name__ == '__main__':
    job, out = sys.argv[1], Path(sys.argv[2])
    init_from_env('cpu')
    torch.set_num_threads(1)
    for r in range(2): (out/f'rank{r}').mkdir(exist_ok=True)
    res = dict(fit=lambda: dict(fit_job(out), bn=bn_job()), invisible=lambda: invisible_job(out))[job]()
    if is_main(): torch.save(res, out/f'{job}.pt')
