"""HC-INR: hierarchical hypernetwork-driven multiscale coordinate warps (field kind "hcinr").

After "Scaling Implicit Fields via Hypernetwork-Driven Multiscale Coordinate Transformations"
(HC-INR, 2025). No code of the paper is public; this is our implementation of its idea.

The paper's: a learned multiscale coordinate transformation, levels coarse to fine, each produced
by a hypernetwork conditioned on local signal features and on the coarser level's output (the
hierarchy), that warps the input domain into a space where the signal is simpler; a compact field
models the warped signal.

Ours (the paper gives no such details):
- level l's local features come from a one-resolution grid (dense for the coarse levels, the
  hash grid `inr.encodings.HashGrid` for the fine ones), sampled at the *current* coordinate x_l;
- H_l is a ReLU MLP body [f_l, c_{l-1}] -> c_l (the code handed to level l+1) and a linear head
  c_l -> (M_l, t_l), both through the batched MLP op (`inr.nn.MLP`, so the C++ and CUDA backends run
  them); T_l(x) = x + r_l tanh(M_l x + t_l): a near-identity affine map (I + r_l M_l) x + r_l t_l
  while small, whose step tanh bounds by r_l = `displacement_scale` cells of level l;
- the head starts at zero, so every T_l is the identity at initialisation: the field starts as
  its compact field (a SIREN by default, or the ReLU Fourier-feature MLP) at x, optionally fed
  the intermediate coordinates too;
- the compact field also reads the finest level's code c_{L-1} (`compact_code`, on by default), a
  local latent beside the warped coordinate. Measured on kodim05 at 128 px, 200 steps: 26.8 dB
  with it, 22.4 dB without, against 25.2 dB for a SIREN of 1.5x the parameters; with the code, the
  warp itself adds 0.3 dB (26.5 dB with every displacement bound at 1e-6 cells), and without the
  code it adds 4.5 dB (camera at 96 px: 30.9 against 26.4 dB);
- grid features start U(-0.1, 0.1) rather than tcnn's 1e-4 (camera at 128 px, 200 steps: 35.7
  against 32.9 dB; kodim05 26.8 against 26.9 dB);
- the grids and hypernetworks train at `warp_lr_scale` (100x) the compact SIREN's learning rate
  (10x: 24.1 dB in the kodim05 setting above).
Tried and not kept (same setting): a per-level loss (the compact field also on every level's
coordinate and code, weight 0.3) gave 25.7 dB and 40% slower steps; 4 levels with 2^11 rows
instead of 3 with 2^12 (about the same parameters) 25.1 dB; a code of 32 instead of 16 28.1 dB on
kodim05 but 34.6 against 35.7 dB on the camera (over the four Kodak images at 96 px a code of 32, two
features per entry, a 2-cell bound and feeding the intermediate coordinates all did worse: README).
`benchmarks/hcinr.py` gives the full comparison
(README, "HC-INR").

Beyond images and SDFs (ours as well): the NeRF field's encoding "hcinr" (`inr.fields.nerf`: the
warp, then the compact field as the density MLP; its SIREN at the run's lr / warp_lr_scale, 3 there),
collections (a hypernetwork generates each member's level hypernetworks, or its compact weights,
over shared grids: `inr.train.collection.collection_field`), and the viewer's warp drawings
(`viewer.warp_overlay`).

>>> import torch
>>> field = HCINRField(2, 3, HCINRConfig(levels=2, compact_hidden=(16,)))
>>> x = torch.rand(4, 2) * 2 - 1
>>> coords, code = field.warp(x)
>>> all(torch.equal(c, x) for c in coords)      # every warp starts as the identity
True
>>> torch.equal(field(x), field.compact(torch.cat([x, code], -1)))
True
"""
from inr.fields import register_field

from .config import COMPACT_FIELDS, HCINRConfig
from .field import PARTS, HCINRField
from .level import LevelHypernetwork, warp_step

register_field(HCINRField.kind, HCINRField, HCINRConfig)

__all__ = ["COMPACT_FIELDS", "PARTS", "HCINRConfig", "HCINRField", "LevelHypernetwork", "warp_step"]
