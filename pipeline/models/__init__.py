"""Models: the registry of architectures, the architectures themselves, the model file.

Every architecture module is imported here, once, so that importing anything from `pipeline.models` registers them
all (`registry.ARCHS`).
"""

from pipeline.models import convnets, recipe_nets, timm_nets, torchvision_nets  # noqa: F401  (registers the architectures)
