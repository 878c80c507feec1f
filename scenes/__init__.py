"""Built-in scenes by name, needing no download (see scenes.images for the image scenes)."""
from .images import (DEFAULT_IMAGE_SCENE, IMAGE_SCENES, checkerboard_zoneplate, list_scenes,
                     load_image_scene, resolve_image)

__all__ = ["DEFAULT_IMAGE_SCENE", "IMAGE_SCENES", "checkerboard_zoneplate", "list_scenes",
           "load_image_scene", "resolve_image"]
