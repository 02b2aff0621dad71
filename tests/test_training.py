"Training survives SIGKILL: a killed run, resumed, ends with the weights of an uninterrupted one."
import textwrap

from killrun import kill_resume_matches

TRAIN = textwrap.dedent("""
    import sys, torch
    from robustsparsesnn.data import get_loaders, synthetic_spec
    from robustsparsesnn.models import vgg11
    from robustsparsesnn.training import TrainConfig, fit
    torch.set_num_threads(1)
    torch.manual_seed(0)
    d = get_loaders(synthetic_spec(in_channels=1, image_size=16, n_train=300, n_test=50), batch_size=32, n_train=192, n_val=32, seed=0)
    m = vgg11(num_classes=10, in_channels=d.spec.in_channels, width=0.125, mean=d.spec.mean, std=d.spec.std)
    cfg = TrainConfig(objective='trades', eps=8/255, attack_steps=2, epochs=4, lr=0.05, eval_n=32)
    fit(m, d, cfg, run=sys.argv[1], name='ann', restore_best=False)
    print('done', flush=True)
""")


def test_sigkill_then_resume_matches_uninterrupted(tmp_path):
    kill_resume_matches(TRAIN, tmp_path, 'ann-last.safetensors', epochs=4)
