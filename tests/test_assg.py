"""ASSG and SA-PGD against the behaviour of the public code of Wang et al. (arXiv 2512.22522).

The public code (craree/Towards-Reliable-Evaluation-of-Adversarial-Robustness-for-Spiking-Neural-Networks) keeps,
per spiking layer, lists M_t[t], D_t[t] over the time steps, starts them at 1 and 0, updates them in every forward
(M first, D with the new M), and uses alpha = a / (M + relax D + 1e-4) with a = 2 tan(pi A) / pi, A = 0.425, in the
arctan surrogate alpha/2 / (1 + (pi/2 alpha u)^2). Its SA-PGD keeps m = 0.5 m + g / mean|g| and v = 0.8 v + g^2 /
mean(g^2), steps clip(m / (sqrt(v) + 1e-12) * s, -s, s) from s = eps, halves s after 22, 19, 16, ... iterations
(down to 6) and projects every step. These tests restate that behaviour step by step, independently of the package's
code, and compare on small models."""
import math
import torch
from torch import nn
import torch.nn.functional as F
from robustsparsesnn.surrogates import ASSG
from robustsparsesnn.neurons import IFNeuron, adaptive_gradients, if_reference
from robustsparsesnn.attacks import project
from robustsparsesnn.autoattack import SAPGD
from robustsparsesnn.ensembles import ASSGAttack


class TinySNN(nn.Module):
    "Linear - IF - Linear - IF - Linear, direct coding over T steps, logits = time mean."
    def __init__(self, T=4, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.T, self.l1, self.n1 = T, nn.Linear(12, 16), IFNeuron(0.6, T=T)
        self.l2, self.n2, self.l3 = nn.Linear(16, 10), IFNeuron(0.5, T=T), nn.Linear(10, 5)

    def forward(self, x):
        h = self.l1(x.flatten(1)).repeat(self.T, 1)
        h = self.l2(self.n1(h))
        return self.l3(self.n2(h)).view(self.T, len(x), -1).mean(0)

    def membranes(self, x):
        "u = v(t^-) - V_th per layer and step, from the per-step reference loop: [(T, B, n) per layer]."
        out, cur = [], self.l1(x.flatten(1)).expand(self.T, len(x), -1)
        for lin, n in ((self.l2, self.n1), (None, self.n2)):
            s, vm, _ = if_reference(cur, n.vth.detach(), membrane=True)
            out.append(vm - n.vth.detach())
            if lin is not None: cur = lin(s)
        return out


class PublishedASSG:
    "The public code's statistics, restated: per time step t, M_t[t] and D_t[t], updated at every forward."
    def __init__(self, T, A=0.425, relax=1.5, b1=0.9, b2=0.9):
        self.M, self.D, self.a, self.relax, self.b1, self.b2 = [1.] * T, [0.] * T, 2 * math.tan(A * math.pi) / math.pi, relax, b1, b2

    def forward(self, u):   # u: (T, B, n), one step at a time as the public node calls it
        alphas = []
        for t in range(len(u)):
            self.M[t] = self.b1 * self.M[t] + (1 - self.b1) * u[t].abs()
            self.D[t] = self.b2 * self.D[t] + (1 - self.b2) * (u[t].abs() - self.M[t]).abs()
            alphas.append(self.a / (self.M[t] + self.relax * self.D[t] + 0.0001))
        return torch.stack(alphas)


def test_assg_alpha_matches_published_statistics():
    "Same membranes in, same alpha out, iteration after iteration of an attack (float64)."
    snn = TinySNN().double()
    x, y = torch.rand(6, 12, dtype=torch.float64), torch.randint(0, 5, (6,))
    ref = [PublishedASSG(snn.T), PublishedASSG(snn.T)]
    with adaptive_gradients(snn, ASSG('atan')) as states:
        for k in range(5):
            xk = (x + 0.05 * k * torch.randn_like(x)).clamp(0, 1).requires_grad_()
            F.cross_entropy(snn(xk), y).backward()
            with torch.no_grad(): us = snn.membranes(xk)
            for st, r, u in zip(states.values(), ref, us):
                torch.testing.assert_close(st.alpha, r.forward(u), rtol=1e-10, atol=1e-12)
            # the backward used that alpha: the gradient equals one computed by hand with the published surrogate
            assert xk.grad is not None and torch.isfinite(xk.grad).all()
    assert all(not hasattr(m.mode, 'observe') for m in (snn.n1, snn.n2))


def test_assg_gradient_matches_published_surrogate():
    "d loss / d x through ASSG equals the per-step loop with the published arctan surrogate at the same alpha."
    snn = TinySNN(T=3, seed=1).double()
    x, y = torch.rand(4, 12, dtype=torch.float64).requires_grad_(), torch.randint(0, 5, (4,))
    with adaptive_gradients(snn, ASSG('atan')) as states:
        F.cross_entropy(snn(x), y, reduction='sum').backward()
        alphas = [st.alpha for st in states.values()]
    g_ours = x.grad.clone()

    class Atan(torch.autograd.Function):   # the published atan1: forward u > 0 (ours: u >= 0; equal off the threshold)
        @staticmethod
        def forward(ctx, u, a): ctx.save_for_backward(u, a); return (u >= 0).to(u.dtype)
        @staticmethod
        def backward(ctx, g):
            u, a = ctx.saved_tensors
            return g * a / 2 / (1 + (a * math.pi / 2 * u) ** 2), None

    x2 = x.detach().clone().requires_grad_()
    cur = snn.l1(x2.flatten(1)).expand(snn.T, len(x2), -1)
    for lin, n, a in ((snn.l2, snn.n1, alphas[0]), (snn.l3, snn.n2, alphas[1])):
        v, out, vth = torch.zeros_like(cur[0]), [], n.vth.detach()
        for t in range(snn.T):
            h = v + cur[t]
            s = Atan.apply(h - vth, a[t])
            v = h * (1 - s.detach())
            out.append(s)
        cur = lin(torch.stack(out))
    F.cross_entropy(cur.mean(0), y, reduction='sum').backward()
    torch.testing.assert_close(g_ours, x2.grad, rtol=1e-9, atol=1e-12)


def published_sapgd(model, x, y, x0, eps, steps):
    "The public SA-PGD loop restated (no restarts, CE loss, given start): the sequence of iterates it visits."
    steps_2, steps_min, size_decr = max(int(0.22 * steps), 1), max(int(0.06 * steps), 1), max(int(0.03 * steps), 1)
    def grad(xa):
        xa = xa.clone().requires_grad_()
        F.cross_entropy(model(xa), y, reduction='sum').backward()
        return xa.grad.detach()
    xa, g, step = x0.clone(), grad(x0), eps * torch.ones(len(x), 1, dtype=x.dtype)
    k, counter, seen = steps_2, 0, [x0.clone()]
    m = v = None                      # the running moments, set at the first iteration
    for i in range(steps):
        gm = g / g.abs().mean(1, keepdim=True)
        g2 = g ** 2 / (g ** 2).abs().mean(1, keepdim=True)
        m = 0.5 * m + gm if i > 0 else gm
        v = 0.8 * v + g2 if i > 0 else g2
        t = torch.clamp(m / (v ** 0.5 + 1e-12) * step, -step, step)
        xa = torch.clamp(torch.min(torch.max(xa + t, x - eps), x + eps), 0, 1)
        seen.append(xa.clone()); g = grad(xa)
        counter += 1
        if counter == k: step, counter, k = step / 2, 0, max(k - size_decr, steps_min)
    return seen


def test_sapgd_follows_published_iterates():
    "Same start, same model: SA-PGD visits the published loop's iterates, all 101 of them (100 steps, float64)."
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(12, 32), nn.Tanh(), nn.Linear(32, 5)).double()
    x, y, eps = torch.rand(5, 12, dtype=torch.float64), torch.randint(0, 5, (5,)), 8 / 255
    atk = SAPGD(eps=eps, steps=100)
    x0 = project(x + eps * (2 * torch.rand_like(x) - 1), x, eps)
    atk.init = lambda _: x0.clone()
    seen = []
    class Rec(nn.Module):
        def __init__(self): super().__init__(); self.net = model
        def forward(self, t): seen.append(t.detach().clone()); return self.net(t)
    atk(Rec(), x, y)
    ref = published_sapgd(model, x, y, x0, eps, 100)
    assert len(seen) == len(ref) == 101
    for ours, theirs in zip(seen, ref): torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-12)


def test_assg_sapgd_leaves_no_state_and_stays_in_ball():
    snn = TinySNN(seed=2)
    x, y = torch.rand(8, 12), torch.randint(0, 5, (8,))
    modes = [str(m.mode) for m in (snn.n1, snn.n2)]
    xa = ASSGAttack(eps=8 / 255, steps=10)(snn, x, y)
    assert (xa - x).abs().max() <= 8 / 255 + 1e-6 and xa.min() >= 0 and xa.max() <= 1
    assert [str(m.mode) for m in (snn.n1, snn.n2)] == modes
