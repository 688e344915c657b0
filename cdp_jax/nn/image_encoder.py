"""Image observations for imitation: the layout of a flat observation that carries camera frames, the crops, and the
ResNet-18 (GroupNorm) encoder that turns such an observation into the conditioning vector of any denoiser backbone.

The project keeps one flat float observation per row and per environment everywhere (data, normaliser, evaluation
pool, samplers). An image observation is that vector with a fixed layout (:class:`ImageLayout`): the low-dim
history first, ``[obs_steps * low_dim]``, then the pixel history, ``[obs_steps * cameras * H * W * 3]`` holding the
raw 0..255 values (frames oldest first, cameras in the layout's order, each frame HWC). Frames are stored and
gathered as uint8 (:mod:`cdp_jax.datasets.robomimic_hdf5`) and only become floats on the device.

The encoder follows the official image recipe (CleanDiffuser's ``MultiImageObsCondition``, as Diffusion Policy
builds it): one ResNet-18 per camera with every BatchNorm replaced by GroupNorm (``channels // 16`` groups),
global average pooling (512 features), random crops (84 -> 76) in training and the centre crop in evaluation, the
same crop for every frame of a sample's history; per frame the camera features and the low-dim observation are
concatenated, and one Dense maps the history to ``emb_dim * obs_steps`` numbers.
"""
from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp

from cdp_jax.nn.convolution import Conv


@dataclasses.dataclass(frozen=True)
class ImageLayout:
    """Where the pieces of a flat image observation lie (see the module docstring)."""

    obs_steps: int
    low_dim: int                   # low-dim numbers per frame (0: images only)
    cameras: tuple                 # robomimic camera keys, e.g. ("agentview_image", "robot0_eye_in_hand_image")
    height: int
    width: int
    crop: int                      # square crop side (Diffusion Policy: 76 for 84 x 84 frames)

    def __post_init__(self):
        if not self.cameras:
            raise ValueError("an image layout needs at least one camera")
        if not 0 < self.crop <= min(self.height, self.width):
            raise ValueError(f"crop {self.crop} must be in [1, min(height, width) = {min(self.height, self.width)}]")

    @property
    def frame_pixels(self) -> int:
        """uint8 values of one frame of all cameras: ``cameras * H * W * 3``."""
        return len(self.cameras) * self.height * self.width * 3

    @property
    def size(self) -> int:
        """Length of the flat observation."""
        return self.obs_steps * (self.low_dim + self.frame_pixels)

    def split(self, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
        """``obs [B, size]`` -> (low-dim ``[B, obs_steps, low_dim]``, pixels ``[B, obs_steps, cameras, H, W, 3]``)."""
        if obs.shape[-1] != self.size:
            raise ValueError(f"an image observation of this layout has {self.size} numbers, got {obs.shape[-1]}")
        b = obs.shape[:-1]
        n_low = self.obs_steps * self.low_dim
        low = obs[..., :n_low].reshape(*b, self.obs_steps, self.low_dim)
        pix = obs[..., n_low:].reshape(*b, self.obs_steps, len(self.cameras), self.height, self.width, 3)
        return low, pix


def crop_offsets(key: jax.Array, batch: int, layout: ImageLayout, train: bool) -> jax.Array:
    """``[batch, cameras, 2]`` int top-left corners: uniform over the valid range in training, the centre in
    evaluation. One corner per sample and camera, shared by every frame of the sample's history."""
    cams = len(layout.cameras)
    limits = jnp.asarray([layout.height - layout.crop, layout.width - layout.crop])
    if not train:
        return jnp.broadcast_to(limits // 2, (batch, cams, 2))
    return jax.random.randint(key, (batch, cams, 2), 0, limits + 1)


def crop(pixels: jax.Array, offsets: jax.Array, size: int) -> jax.Array:
    """``pixels [B, T, C, H, W, 3]``, ``offsets [B, C, 2]`` -> ``[B, T, C, size, size, 3]`` (same corner for all T)."""
    def one(frames, corner):              # frames [T, H, W, 3], corner [2]
        return jax.lax.dynamic_slice(frames, (0, corner[0], corner[1], 0), (frames.shape[0], size, size, 3))
    per_camera = jax.vmap(one, in_axes=(1, 0), out_axes=1)          # over cameras
    return jax.vmap(per_camera)(pixels, offsets)                    # over the batch


class BasicBlock(nn.Module):
    """ResNet's basic block with GroupNorm: two 3x3 convolutions and a (projected) shortcut."""
    channels: int
    stride: int = 1

    @nn.compact
    def __call__(self, x):
        norm = lambda: nn.GroupNorm(num_groups=self.channels // 16)
        h = Conv(self.channels, (3, 3), self.stride, padding=1, use_bias=False)(x)
        h = nn.relu(norm()(h))
        h = norm()(Conv(self.channels, (3, 3), padding=1, use_bias=False)(h))
        if self.stride != 1 or x.shape[-1] != self.channels:
            x = norm()(Conv(self.channels, (1, 1), self.stride, use_bias=False)(x))
        return nn.relu(h + x)


class ResNet18GN(nn.Module):
    """ResNet-18 with GroupNorm (``channels // 16`` groups) and global average pooling: ``[N, H, W, 3]`` floats in
    [0, 1] -> ``[N, 512]``."""

    @nn.compact
    def __call__(self, x):
        x = Conv(64, (7, 7), 2, padding=3, use_bias=False)(x)
        x = nn.relu(nn.GroupNorm(num_groups=4)(x))
        x = nn.max_pool(x, (3, 3), (2, 2), padding=((1, 1), (1, 1)))
        for i, channels in enumerate((64, 128, 256, 512)):
            x = BasicBlock(channels, 1 if i == 0 else 2)(x)
            x = BasicBlock(channels)(x)
        return jnp.mean(x, axis=(-3, -2))


class ImageObsEncoder(nn.Module):
    """A flat image observation ``[B, layout.size]`` -> conditioning ``[B, obs_steps * emb_dim]``.

    ``train=True`` crops at random (needs the ``"crop"`` RNG stream), otherwise at the centre."""
    layout: ImageLayout
    emb_dim: int = 256

    @nn.compact
    def __call__(self, obs, train: bool = False):
        lay = self.layout
        low, pix = lay.split(obs)
        b = obs.shape[0]
        key = self.make_rng("crop") if train else None
        pix = crop(pix, crop_offsets(key, b, lay, train), lay.crop).astype(jnp.float32) / 255.0
        features = [ResNet18GN(name=f"resnet_{cam}")(pix[:, :, c].reshape(b * lay.obs_steps, lay.crop, lay.crop, 3))
                    .reshape(b, lay.obs_steps, -1) for c, cam in enumerate(lay.cameras)]
        per_frame = jnp.concatenate([low] + features, axis=-1)        # [B, obs_steps, low + 512 * cameras]
        return nn.Dense(self.emb_dim * lay.obs_steps)(per_frame.reshape(b, -1))


class ImageConditioned(nn.Module):
    """A denoiser backbone conditioned on image observations: ``encode(obs [B, layout.size], train) -> cond``
    (:class:`ImageObsEncoder`, part of the parameters) then ``denoise(x, t, cond)`` (the backbone, any of
    :func:`cdp_jax.nn.networks.make_denoiser_network`'s). The split lets a sampler or a Jacobian encode once and then
    differentiate or iterate in the action alone."""
    backbone: nn.Module
    layout: ImageLayout
    emb_dim: int = 256

    def setup(self):
        self.encoder = ImageObsEncoder(self.layout, self.emb_dim)

    def encode(self, obs, train: bool = False):
        return self.encoder(obs, train)

    def denoise(self, x, t, cond):
        return self.backbone(x, t, cond)

    def __call__(self, x, t, obs, train: bool = False):
        return self.denoise(x, t, self.encode(obs, train))
