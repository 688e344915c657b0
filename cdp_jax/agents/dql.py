"""Diffusion-QL (Wang et al. 2023), a Table 1 baseline: EDP's critic and evaluation, but an eps-prediction actor
with T = 5 and 5 DDPM steps, whose Q term differentiates through the WHOLE reverse chain instead of EDP's one-step
approximation. ``max_q_backup`` gives DQL's optional max-Q target. gamma > 0 adds the contraction term (CDP-DQL);
the penalty acts on the x0 prediction formed from eps (README, "The contraction loss, and which sign").
"""
from __future__ import annotations

import jax.numpy as jnp
import ml_collections

from cdp_jax.agents import edp


def default_config() -> ml_collections.ConfigDict:
    cfg = edp.default_config()
    cfg.agent = "dql"
    d = cfg.diffusion
    d.prediction, d.diffusion_steps, d.sampler, d.sampling_steps = "eps", 5, "ddpm", 5
    d.contraction.low_noise_fraction = 1.0          # with T = 5 the lowest-noise 10% is no level at all
    cfg.num_candidates, cfg.candidate_temperature = 50, 1.0
    return cfg


class DQLAgent(edp.EDPAgent):
    def policy_action(self, params, obs, act, key):
        """A full reverse-chain sample with the current parameters (gradients flow through every step)."""
        del act
        return jnp.clip(self.denoiser.sample(params, key, obs), -1.0, 1.0)
