"""The GPU path, measured: the IF neuron's compiled graph, one training step of every stage of the paper's schedule at paper
scale, the schedule extrapolated to GPU-hours, and our SNN training step against SpikingJelly 2.0's on the same GPU.

    bash bench/gpu.sh [OUT.json]                        # on a machine with a CUDA GPU (~5 min on an H200)
    python bench/bench_gpu.py --device cpu --width 0.0625 --batch 8 --neuron-batch 4 --reps 1   # the same code path, tiny

1. The IF neuron (Eq. 1-3 and BPTT) of VGG-16's first layer (T = 8, batch 128, 64 x 32 x 32), forward + backward: the
   torch loop, the `torch.compile`d graph (`kernel.compiled_loop`, Triton on a GPU) and, on a CPU, the numba kernel.
   Six float32 passes over the layer (x, spikes, v(t^-) forward; dL/ds, v(t^-), dL/dx backward) give an effective
   bandwidth, printed as a fraction of what a plain device copy reaches.
2. One training step of each stage at paper scale: VGG-16 width 1, 32 x 32 x 3 inputs shaped like CIFAR-10, batch 128,
   the paper's objectives (`PAPER_PRETRAIN`: TRADES with PGD-10 on the KL term; `PAPER_PRUNE.scores`: the same on
   HYDRA scores at 10 % density; `PAPER_PRUNE.finetune`: the same on the masked weights; `PAPER_FINETUNE`: RFGSM-TRADES
   through the SNN at T = 8, BPTT), in float32 and, for the ANN stages, under bf16 autocast (`amp = true`); and one
   validation (clean pass and PGD-10 on 512 images) per stage. The images are random: a dense step's cost does not depend
   on pixel values (spike counts change nothing in dense convolutions).
3. The paper's schedule (100 + 20 + 30 ANN epochs, 80 SNN epochs; 50,000 training images) in GPU-hours, each epoch
   ceil(50,000 / batch) steps plus one validation, next to the paper's 24.5 h on a Quadro RTX 8000 and the goal of 3 h.
4. The SNN training step alone (forward + BPTT + SGD, no attack): ours through the compiled graph, through the torch
   loop and in channels-last, against SpikingJelly 2.0 (IFNode in multi-step mode, its dispatched fused op; skipped with
   a note when it is not installed: pip install --no-deps spikingjelly==2.0.0). The goal: SpikingJelly / ours >= 1.5.

Steps are timed after warm-up calls (which include compilation), each between two device synchronisations; the median
of --reps is printed. --out writes every number as JSON.
"""
import argparse, datetime, json, math, os, platform, statistics, time
from dataclasses import replace
os.environ.setdefault('RSNN_PROGRESS', '0')

import torch
import torch.nn.functional as F

from robustsparsesnn.kernel import compiled_loop, cpu_kernel
from robustsparsesnn.models import vgg16
from robustsparsesnn.neurons import if_spikes, spiking_neurons
from robustsparsesnn.pruning import PAPER_PRUNE, hydra_init, lwm_prune
from robustsparsesnn.snn_finetune import PAPER_FINETUNE, SNN_MODE, SNN_T
from robustsparsesnn.training import PAPER_PRETRAIN, evaluate, make_optimizer, mask_weights_, train_epoch

PAPER_HOURS, GOAL_HOURS, GOAL_SJ = 24.5, 3.0, 1.5
SCHEDULE = {'pretrain': PAPER_PRETRAIN, 'scores': PAPER_PRUNE.scores, 'finetune': PAPER_PRUNE.finetune,
            'snn': PAPER_FINETUNE}
TRAIN_IMAGES, VAL_N = 50_000, 512


def sync(dev):
    if dev.type == 'cuda': torch.cuda.synchronize(dev)


def timed(f, dev, warmup, reps) -> float:
    "Median seconds of `f()` over `reps` calls after `warmup` calls, each call between two synchronisations."
    for _ in range(warmup): f()
    ts = []
    for _ in range(reps):
        sync(dev); t = time.perf_counter(); f(); sync(dev); ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def neuron(dev, batch, warmup, reps) -> dict:
    "Seconds of one IF layer's forward + backward by each path, and the fraction of copy bandwidth it reaches."
    g_ = torch.Generator(device=dev).manual_seed(0)
    x = (torch.randn(SNN_T, batch, 64, 32, 32, device=dev, generator=g_) * 0.5 + 0.3).requires_grad_()
    vth, g = torch.tensor(1.0, device=dev, requires_grad=True), torch.randn(x.shape, device=dev, generator=g_)
    def step(): if_spikes(x, vth, 1.0, SNN_MODE).backward(g)
    paths = {'torch loop': (False, ()), 'compiled graph': (False, (dev.type,))}
    if dev.type == 'cpu' and cpu_kernel().available: paths['numba kernel'] = (True, ())
    out = {}
    for name, (numba_on, graph_on) in paths.items():
        with cpu_kernel(numba_on), compiled_loop(graph_on): out[name] = timed(step, dev, warmup, reps)
    y = torch.empty_like(x)
    copy = timed(lambda: y.copy_(x.detach()), dev, warmup, reps)
    copy_bw, layer_bytes = 2 * 4 * x.numel() / copy, 6 * 4 * x.numel()
    return dict(shape=list(x.shape), copy_GBps=copy_bw / 1e9,
                paths={k: dict(seconds=t, GBps=layer_bytes / t / 1e9, of_copy=layer_bytes / t / copy_bw)
                       for k, t in out.items()})


def stage_steps(width, batch, dev, amp) -> dict:
    "One training step per stage of the schedule, as `training.fit` takes it: {stage: (model, cfg, step)}."
    g = torch.Generator(device=dev).manual_seed(1)
    x = torch.rand(batch, 3, 32, 32, device=dev, generator=g)
    y = torch.randint(0, 10, (batch,), device=dev, generator=g)
    models = {k: vgg16(10, 3, width=width).to(dev) for k in SCHEDULE if amp is False or k != 'snn'}
    if 'scores' in models: hydra_init(models['scores'], 0.1)                       # weights frozen, scores trained
    if 'finetune' in models: lwm_prune(models['finetune'], 0.1)                    # masks fixed, weights trained
    if 'snn' in models:
        models['snn'].set_T(SNN_T).set_mode(SNN_MODE)
        for _, n in spiking_neurons(models['snn']): n.threshold.requires_grad_(True)
        mask_weights_(models['snn'])
    out = {}
    for k, m in models.items():
        cfg = replace(SCHEDULE[k], amp=amp)
        opt, _ = make_optimizer(m, cfg)
        attack = cfg.make_attack(seed=0)
        out[k] = (m, cfg, lambda m=m, opt=opt, cfg=cfg, attack=attack: train_epoch(m, [(x, y)], opt, cfg, attack))
    return out


def stages(width, batch, dev, warmup, reps) -> dict:
    "Seconds per training step and per validation of every stage, float32 and (ANN stages) bf16 autocast."
    g = torch.Generator(device=dev).manual_seed(2)
    val = [(torch.rand(min(VAL_N, batch), 3, 32, 32, device=dev, generator=g),
            torch.randint(0, 10, (min(VAL_N, batch),), device=dev, generator=g)) for _ in range(max(1, VAL_N // batch))]
    out = {}
    for amp in (False, True):
        for k, (m, cfg, step) in stage_steps(width, batch, dev, amp).items():
            r = out.setdefault(k, {})
            r['bf16' if amp else 'fp32'] = timed(step, dev, warmup, reps)
            if not amp: r['validation'] = timed(lambda m=m, c=replace(cfg, eval_n=VAL_N): evaluate(m.eval(), val, c), dev, 1, 1)
    return out


def gpu_hours(steps:dict, batch:int, precision:str) -> dict:
    "Hours of the paper's schedule per stage: epochs x (steps per epoch x step + one validation)."
    per_epoch = math.ceil(TRAIN_IMAGES / batch)
    return {k: SCHEDULE[k].epochs * (per_epoch * s.get(precision, s['fp32']) + s['validation']) / 3600
            for k, s in steps.items()}


def snn_steps(width, batch, dev, warmup, reps) -> dict:
    "Seconds of one plain SNN training step (forward + BPTT + SGD) by ours (three ways) and by SpikingJelly."
    import sys; sys.path.insert(0, os.path.dirname(__file__))
    from _snn_peers import FRAMEWORKS, SJ_VERSION, available
    names, notes = available(['ours', 'spikingjelly'])
    g = torch.Generator(device=dev).manual_seed(3)
    x, y = torch.rand(batch, 3, 32, 32, device=dev, generator=g), torch.randint(0, 10, (batch,), device=dev, generator=g)
    def trainer(name, channels_last=False):
        torch.manual_seed(0)
        fw = FRAMEWORKS[name](width, SNN_T); fw.net = fw.net.to(dev).train()
        xs = x.contiguous(memory_format=torch.channels_last) if channels_last else x
        if channels_last: fw.net = fw.net.to(memory_format=torch.channels_last)
        opt = torch.optim.SGD(fw.net.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
        def step():
            opt.zero_grad(set_to_none=True); F.cross_entropy(fw.logits(xs), y).backward(); opt.step()
        return step
    graph = (dev.type,)
    runs = {'ours (compiled graph)': (trainer('ours'), graph), 'ours (torch loop)': (trainer('ours'), ()),
            'ours (compiled graph, channels-last)': (trainer('ours', True), graph)}
    if 'spikingjelly' in names: runs[f'SpikingJelly {SJ_VERSION}'] = (trainer('spikingjelly'), ())
    out = {}
    for k, (step, on) in runs.items():
        with compiled_loop(on): out[k] = timed(step, dev, warmup, reps)
    return dict(seconds=out, notes=notes)


def machine(dev) -> str:
    if dev.type == 'cuda':
        p = torch.cuda.get_device_properties(dev)
        what = f"{p.name}, {p.total_memory / 2**30:.0f} GiB, {p.multi_processor_count} SMs"
    else: what = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    return f"{what}; torch {torch.__version__}, python {platform.python_version()}"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--device', default='cuda')
    ap.add_argument('--width', type=float, default=1.0, help="VGG-16's width (1: the paper's)")
    ap.add_argument('--batch', type=int, default=128, help="training batch (128: the paper's)")
    ap.add_argument('--neuron-batch', type=int, default=128)
    ap.add_argument('--warmup', type=int, default=2)
    ap.add_argument('--reps', type=int, default=5)
    ap.add_argument('--out', help='write the numbers as JSON here')
    a = ap.parse_args(argv)
    dev = torch.device(a.device)
    if dev.type == 'cuda' and not torch.cuda.is_available():
        raise SystemExit("bench_gpu.py: no CUDA device here; --device cpu runs the same code on the CPU")
    if dev.type == 'cuda': torch.backends.cudnn.benchmark = True
    print(f"{datetime.datetime.now():%Y-%m-%d %H:%M}  {machine(dev)}")
    res = dict(machine=machine(dev), width=a.width, batch=a.batch, reps=a.reps)

    res['neuron'] = nr = neuron(dev, a.neuron_batch, a.warmup, a.reps)
    print(f"\n== IF layer {nr['shape']}, forward + BPTT backward; a device copy moves {nr['copy_GBps']:.0f} GB/s")
    for k, r in nr['paths'].items():
        print(f"{k:<18}{1e3 * r['seconds']:>9.2f} ms{r['GBps']:>9.0f} GB/s{100 * r['of_copy']:>7.0f} % of a copy")

    res['stages'] = st = stages(a.width, a.batch, dev, a.warmup, a.reps)
    print(f"\n== one training step per stage, VGG-16 width {a.width}, batch {a.batch} (s); validation: 512 images, PGD-10")
    print(f"{'stage':<10}{'epochs':>7}{'fp32':>9}{'bf16':>9}{'validation':>12}")
    for k, s in st.items():
        bf = f"{s['bf16']:>9.3f}" if 'bf16' in s else f"{'-':>9}"
        print(f"{k:<10}{SCHEDULE[k].epochs:>7}{s['fp32']:>9.3f}{bf}{s['validation']:>12.2f}")
    res['hours'] = {p: gpu_hours(st, a.batch, p) for p in ('fp32', 'bf16')}
    for p, h in res['hours'].items():
        parts = ', '.join(f"{k} {v:.2f}" for k, v in h.items())
        print(f"the paper's schedule, ANN stages in {p}: {sum(h.values()):.2f} GPU-hours ({parts}); paper {PAPER_HOURS} h "
              f"on a Quadro RTX 8000, goal {GOAL_HOURS} h")

    res['snn_step'] = sn = snn_steps(a.width, a.batch, dev, a.warmup, a.reps)
    print(f"\n== SNN training step (forward + BPTT + SGD), VGG-16 width {a.width}, T = {SNN_T}, batch {a.batch}")
    ours = sn['seconds']['ours (compiled graph)']
    for k, t in sn['seconds'].items(): print(f"{k:<40}{t:>8.3f} s{t / ours:>7.2f}x ours")
    for n in sn['notes']: print(n)
    if a.out:
        os.makedirs(os.path.dirname(a.out) or '.', exist_ok=True)
        with open(a.out + '.tmp', 'w') as f: json.dump(res, f, indent=1)
        os.replace(a.out + '.tmp', a.out)
        print(f"\nwritten: {a.out}")


if __name__ == '__main__':
    main()
