"""What-if prototypes for changes inside robustsparsesnn, applied at run time in the benchmark process only (the
package files are not touched): evidence for what such changes would buy. Each one is checked against the package.

- `dedup_forward`: direct coding feeds the same image at every step, so the first conv and its batch norm see T
  identical copies; they are computed on the B images once and expanded to T*B (train-mode BN statistics of the copies
  are those of the B images, so the result is the same).

(The lean IF autograd function first prototyped here is now the package's `neurons.IFSpike`.)
"""

from robustsparsesnn.neurons import sim_steps, time_mean


def dedup_forward(model, x):
    "`SpikingNet.forward` of a VGG with the first conv + BN computed once on the B images and expanded over T."
    n = sim_steps(model.T, model.mode)
    f = model.features
    y = f[1](f[0](model.normalize(x)))                     # conv1 + BN1 on B images (BN statistics: the same)
    y = y.unsqueeze(0).expand(n, *y.shape).reshape(n * y.shape[0], *y.shape[1:])
    for layer in list(f)[2:]: y = layer(y)
    return time_mean(model.classifier(y), n)
