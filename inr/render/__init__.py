"""Rendering: cameras and rays, packed volume rendering, the occupancy grid and ray marching
(marching cubes and sphere tracing for SDFs live beside them)."""
from .occupancy import OccupancyGrid, march, step_schedule
from .rays import Cameras, look_at, orbit_poses, ray_aabb
from .volume import (
           accumulate,
           composite,
           render_weights,
           transmittance,
           visible_samples,
)

__all__ = ["Cameras", "OccupancyGrid", "accumulate", "composite", "look_at", "march", "orbit_poses", "ray_aabb",
           "render_weights", "step_schedule", "transmittance", "visible_samples"]
