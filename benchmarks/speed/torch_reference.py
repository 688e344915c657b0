"""A PyTorch reference of the official CDP-RL training step, for speed comparisons side by side (issue 15).

    python benchmarks/speed/torch_reference.py --gamma=0.1 [--steps=200] [--warmup=20] [--jacobian_at_gamma0]

Prints one JSON line ``{"updates_per_s": ...}``. Needs ``torch`` (not a dependency of cdp_jax: ``pip install torch``)
and imports nothing from cdp_jax, so it runs under any interpreter that has torch.

What it runs is the step of the official ``scripts/cdp_rl.py`` (EDP on CleanDiffuser) operation for operation, written
here from that script and CleanDiffuser's modules (no code of theirs is copied), on Hopper shapes (obs 11, act 3,
batch 256, T = 50, cosine schedule, x0 prediction):

* critic: twin ``Linear-LayerNorm-Tanh, 2 x [Linear-LayerNorm-Mish], Linear(1)`` (hidden 256), Adam 3e-4; target
  ``r + 0.99 (1 - done) min Q'(s', a')`` with ``a'`` from 15 steps of DPM-Solver++(2M) on the EMA actor (a Python loop
  of network calls, as CleanDiffuser's ``sample``);
* actor: DQL MLP (positional time embedding, time MLP 64 -> 128 -> 64 with Mish, 3 x 256 Mish trunk), AdamW 3e-4, loss
  ``bc + eta q_loss + gamma L_c``: the denoising loss at random levels, EDP's one-step action approximation through
  the critic (``-Q1 / |Q2|.detach()``), and the Frobenius contraction loss ``mean((J_sym + 0.1 I)^2)`` on the samples
  with level < 5, its Jacobian built row by row with ``autograd.grad(create_graph=True)`` as
  ``source/contraction_loss.py`` does;
* cosine LR schedules stepped every update, EMA (0.995) every 5 steps from step 1000 and Polyak (0.995) every 5 steps,
  and the per-step ``.item()`` logging of the losses.

The official script computes the Jacobian whatever its loss weights are (``gamma = 0`` only zeroes the term), so its
EDP pays for it; ``--jacobian_at_gamma0`` reproduces that, and without it ``gamma = 0`` skips the Jacobian (the
fastest EDP the official code could be). Unlike the official script, batches come from one fixed tensor (no
DataLoader workers competing for the cores), which can only make this reference faster than the original.
"""
from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

OBS, ACT, BATCH, LEVELS, SAMPLING_STEPS, EMB, HIDDEN = 11, 3, 256, 50, 15, 64, 256


def cosine_schedule(levels: int = LEVELS, t_min: float = 1e-3, s: float = 0.008, t_max: float = 0.9946):
    t = np.linspace(t_min, 1.0, levels)
    f = lambda u: np.cos(0.5 * np.pi * (np.minimum(u, t_max) + s) / (1.0 + s))
    alpha = f(t) / f(0.0)
    return torch.tensor(alpha, dtype=torch.float32), torch.tensor(np.sqrt(1.0 - alpha**2), dtype=torch.float32)


class PositionalEmbedding(nn.Module):
    def __init__(self, dim: int, max_positions: int = 10000):
        super().__init__()
        self.dim, self.max_positions = dim, max_positions

    def forward(self, t):
        freqs = (1.0 / self.max_positions) ** (torch.arange(self.dim // 2, dtype=torch.float32) / (self.dim // 2))
        x = t.float()[:, None] * freqs[None]
        return torch.cat([x.cos(), x.sin()], dim=1)


class DQLMlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.time_mlp = nn.Sequential(PositionalEmbedding(EMB), nn.Linear(EMB, 2 * EMB), nn.Mish(),
                                      nn.Linear(2 * EMB, EMB))
        self.mid = nn.Sequential(nn.Linear(OBS + ACT + EMB, HIDDEN), nn.Mish(), nn.Linear(HIDDEN, HIDDEN), nn.Mish(),
                                 nn.Linear(HIDDEN, HIDDEN), nn.Mish())
        self.final = nn.Linear(HIDDEN, ACT)

    def forward(self, x, t, obs):
        return self.final(self.mid(torch.cat([x, self.time_mlp(t), obs], -1)))


class TwinCritic(nn.Module):
    def __init__(self):
        super().__init__()
        q = lambda: nn.Sequential(nn.Linear(OBS + ACT, HIDDEN), nn.LayerNorm(HIDDEN), nn.Tanh(),
                                  nn.Linear(HIDDEN, HIDDEN), nn.LayerNorm(HIDDEN), nn.Mish(),
                                  nn.Linear(HIDDEN, HIDDEN), nn.LayerNorm(HIDDEN), nn.Mish(), nn.Linear(HIDDEN, 1))
        self.q1, self.q2 = q(), q()

    def forward(self, obs, act):
        x = torch.cat([obs, act], -1)
        return self.q1(x), self.q2(x)


@torch.no_grad()
def dpm_solver_2m(model, obs, alpha, sigma, steps: int = SAMPLING_STEPS):
    """Second-order multistep DPM-Solver++ over ``steps`` uniformly spaced levels, x0 prediction clipped to [-1, 1]."""
    levels = torch.linspace(0, LEVELS - 1, steps + 1).round().long()  # level of solver position i (0: cleanest)
    log_snr = torch.log(alpha / sigma)
    x = torch.randn(obs.shape[0], ACT)
    prev_x0, prev_h = None, None
    for i in range(steps, 0, -1):
        t = torch.full((obs.shape[0],), int(levels[i]), dtype=torch.long)
        x0 = model(x, t, obs).clip(-1.0, 1.0)
        s_to = int(levels[i - 1])
        h = log_snr[s_to] - log_snr[levels[i]]
        d = x0 if prev_x0 is None or i == 1 else (1 + 0.5 * prev_h / h) * x0 - 0.5 * prev_h / h * prev_x0
        x = (sigma[s_to] / sigma[levels[i]]) * x - alpha[s_to] * torch.expm1(-h) * d
        prev_x0, prev_h = x0, h
    return x.clip(-1.0, 1.0)


def frobenius_contraction(model, x, t, obs, beta: float = 0.1):
    """``mean((J_sym + beta I)^2)`` with the Jacobian of ``model`` in ``x`` built one output row at a time."""
    x = x.clone().detach().requires_grad_(True)
    out = model(x, t, obs)
    jac = torch.zeros(x.shape[0], ACT, ACT)
    for i in range(ACT):
        g = torch.zeros_like(out)
        g[:, i] = 1.0
        jac[:, i, :] = torch.autograd.grad(out, x, g, retain_graph=True, create_graph=True)[0]
    sym = 0.5 * (jac + jac.transpose(-2, -1))
    return ((sym + beta * torch.eye(ACT).expand(x.shape[0], -1, -1)) ** 2).mean()


def make_step(gamma: float, jacobian_at_gamma0: bool, total_steps: int = 1_000_000, eta: float = 1.0):
    torch.manual_seed(0)
    actor, critic = DQLMlp(), TwinCritic()
    actor_ema = DQLMlp()
    actor_ema.load_state_dict(actor.state_dict())
    actor_ema.requires_grad_(False)
    critic_target = TwinCritic()
    critic_target.load_state_dict(critic.state_dict())
    critic_target.requires_grad_(False)
    actor_opt = torch.optim.AdamW(actor.parameters(), lr=3e-4)
    critic_opt = torch.optim.Adam(critic.parameters(), lr=3e-4)
    schedulers = [torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=total_steps) for o in (actor_opt, critic_opt)]
    alpha, sigma = cosine_schedule()
    obs, next_obs = torch.randn(BATCH, OBS), torch.randn(BATCH, OBS)
    act = torch.tanh(torch.randn(BATCH, ACT))
    rew, done = torch.ones(BATCH, 1), torch.zeros(BATCH, 1)
    with_jacobian = gamma > 0 or jacobian_at_gamma0
    n = [0]

    def step():
        q1, q2 = critic(obs, act)
        next_act = dpm_solver_2m(actor_ema, next_obs, alpha, sigma)
        with torch.no_grad():
            target = (rew + 0.99 * (1 - done) * torch.min(*critic_target(next_obs, next_act))).detach()
        critic_loss = F.mse_loss(q1, target) + F.mse_loss(q2, target)
        critic_opt.zero_grad()
        critic_loss.backward()
        critic_opt.step()

        t = torch.randint(LEVELS, (BATCH,))
        x_t = alpha[t][:, None] * act + sigma[t][:, None] * torch.randn_like(act)
        bc_loss = ((actor(x_t, t, obs) - act) ** 2).mean()
        t = torch.randint(LEVELS, (BATCH,))
        noisy = alpha[t][:, None] * act + sigma[t][:, None] * torch.randn_like(act)
        pred = actor(noisy, t, obs)
        critic.requires_grad_(False)
        qa, qb = critic(obs, pred)
        critic.requires_grad_(True)
        q_loss = -qa.mean() / qb.abs().mean().detach()
        contraction = torch.zeros(())
        low = t < int(0.1 * LEVELS)
        if with_jacobian and bool(low.any()):
            contraction = frobenius_contraction(actor, noisy[low], t[low], obs[low])
        actor_loss = bc_loss + eta * q_loss + gamma * contraction
        actor_opt.zero_grad()
        actor_loss.backward()
        actor_opt.step()
        for s in schedulers:
            s.step()
        if n[0] % 5 == 0:
            with torch.no_grad():
                if n[0] >= 1000:
                    for p, p_ema in zip(actor.parameters(), actor_ema.parameters()):
                        p_ema.mul_(0.995).add_(p, alpha=0.005)
                for p, p_t in zip(critic.parameters(), critic_target.parameters()):
                    p_t.copy_(0.995 * p + 0.005 * p_t)
        n[0] += 1
        return [bc_loss.item(), q_loss.item(), critic_loss.item(), target.mean().item(), target.std().item(),
                contraction.item()]

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gamma", type=float, default=0.0)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--jacobian_at_gamma0", action="store_true")
    args = parser.parse_args()
    step = make_step(args.gamma, args.jacobian_at_gamma0)
    for _ in range(args.warmup):
        step()
    start = time.perf_counter()
    for _ in range(args.steps):
        losses = step()
    seconds = time.perf_counter() - start
    assert all(math.isfinite(v) for v in losses), losses
    print(json.dumps(dict(updates_per_s=args.steps / seconds, torch=torch.__version__,
                          threads=torch.get_num_threads())))


if __name__ == "__main__":
    main()
