"""Built-in scenes by name, needing no download (see scenes.images for the image scenes and
scenes.multiview for the procedural multi-view scenes of radiance fields, scenes.shapes for the
analytic shapes of signed distance fields)."""
from .images import (DEFAULT_IMAGE_SCENE, IMAGE_SCENES, checkerboard_zoneplate, list_scenes,
                     load_image_scene, resolve_image)
from .multiview import (DEFAULT_MULTIVIEW_SCENE, MULTIVIEW_SCENES, describe_scene, generate_scene,
                        list_multiview_scenes, multiview_scene)
from .shapes import (DEFAULT_SHAPE_SCENE, SHAPE_SCENES, AnalyticShape, list_shapes, load_shape_scene,
                     resolve_shape)

__all__ = ["DEFAULT_IMAGE_SCENE", "IMAGE_SCENES", "checkerboard_zoneplate", "list_scenes",
           "load_image_scene", "resolve_image",
           "DEFAULT_MULTIVIEW_SCENE", "MULTIVIEW_SCENES", "describe_scene", "generate_scene",
           "list_multiview_scenes", "multiview_scene",
           "DEFAULT_SHAPE_SCENE", "SHAPE_SCENES", "AnalyticShape", "list_shapes", "load_shape_scene", "resolve_shape"]
