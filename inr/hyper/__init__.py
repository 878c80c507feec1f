"""Hypernetworks for fields (DESIGN §1): a conditioning z -> some or all of a field's parameters,
one set per instance, many instances per batch through the batched MLP op.

    field = SirenField(2, 3, SirenConfig(hidden=(64, 64, 64)))
    hf = HyperField(field, d_cond=64, cfg=HyperConfig(mode="full", mip=True))
    y = hf(x, z)            # x [B, N, 2], z [B, 64] -> y [B, N, 3]
    hf.generated_shapes()   # {"net.layers.0.weight": (64, 2), ...}
    hf.materialize(z[0])    # a plain SirenField with instance 0's weights

Modes (`HyperConfig.mode`): full weights, FiLM scale and shift, shift-only (Functa), low-rank
theta_0 + U V^T; targets by name pattern or last k layers; chunked heads; MIP (`inr.hyper.mip`)
or the SIREN paper's initialisation. Conditioning: `AutoDecoder`, `ConvEncoder`, `SetEncoder`.

`DOHField` (`inr.hyper.doh`): D'OH, decoder-only random hypernetworks: every weight is
theta_0 + P z with P regenerated from a seed, only the latent z trained (the image codec's core).
`DynamicHyperNetwork` (`inr.hyper.dynamic`): HyperFields' dynamic hypernetwork, a transformer's
conditioning token and the stop-gradient mean activations -> an MLP's weights layer by layer.

`HCINRField` (`inr.hyper.hcinr`, field kind "hcinr"): hierarchical hypernetwork coordinate warps
(HC-INR) in front of a compact field.
"""
from .conditioning import SOURCES, AutoDecoder, ConvEncoder, SetEncoder
from .doh import DOHConfig, DOHField
from .dynamic import DynamicHyperConfig, DynamicHyperNetwork, LayerTarget, mlp_layer_targets, mlp_probe
from .field import HyperField, build_hyper_field, hyper_config_dict
from .generator import INITS, HyperConfig, HyperNetwork
from .hcinr import HCINRConfig, HCINRField
from .mip import mip_encode
from .modes import MODES
from .targets import Target, mlp_parameters, select_targets

__all__ = ["INITS", "MODES", "SOURCES", "AutoDecoder", "ConvEncoder", "DOHConfig", "DOHField",
           "DynamicHyperConfig", "DynamicHyperNetwork", "LayerTarget", "mlp_layer_targets", "mlp_probe",
           "HCINRConfig", "HCINRField", "HyperConfig",
           "HyperField", "HyperNetwork",
           "SetEncoder", "Target", "build_hyper_field", "hyper_config_dict", "mip_encode", "mlp_parameters",
           "select_targets"]
