"""Input encodings: multiresolution hash grid, frequency / Fourier features, spherical harmonics,
and tiny-cuda-nn JSON config parsing."""
from .config import Identity, encoding_from_config
from .frequency import FrequencyEncoding, GaussianFourierFeatures
from .hashgrid import GridLayout, HashGrid, HashGridConfig, grid_layout, hashgrid_encode
from .spherical_harmonics import SphericalHarmonics

__all__ = ["FrequencyEncoding", "GaussianFourierFeatures", "GridLayout", "HashGrid", "HashGridConfig", "Identity",
           "SphericalHarmonics", "encoding_from_config", "grid_layout", "hashgrid_encode"]
