"""Diffusion-QL (Wang et al. 2023), a Table 1 baseline as the official CDP code's baseline config runs it: EDP's
critic, an eps-prediction actor with T = 10 and 5 DDIM sampling steps, 100 evaluation candidates at temperature
0.5 (the DQL paper itself: T = 5 DDPM steps; ``--config.agent_config.diffusion.diffusion_steps=5
--config.agent_config.diffusion.sampler=ddpm``), whose Q term differentiates through the WHOLE reverse chain instead of EDP's one-step
approximation. ``max_q_backup`` gives DQL's optional max-Q target. gamma > 0 adds the contraction term (CDP-DQL);
the penalty acts on the x0 prediction formed from eps (docs/contraction.md).
"""
from __future__ import annotations

import jax.numpy as jnp
import ml_collections

from cdp_jax.agents import edp


def default_config() -> ml_collections.ConfigDict:
    cfg = edp.default_config()
    cfg.agent = "dql"
    d = cfg.diffusion
    d.prediction, d.diffusion_steps, d.sampler, d.sampling_steps = "eps", 10, "ddim", 5
    d.contraction.low_noise_fraction = 1.0          # with T = 10 the lowest-noise 10% is one level
    cfg.num_candidates, cfg.candidate_temperature = 100, 0.5
    return cfg


class DQLAgent(edp.EDPAgent):
    def policy_action(self, params, obs, act, key):
        """A full reverse-chain sample with the current parameters (gradients flow through every step)."""
        del act
        return jnp.clip(self.denoiser.sample(params, key, obs), -1.0, 1.0)
