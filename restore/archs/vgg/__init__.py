"""VGG feature extractor for perceptual losses (``VGGFeatureExtractor``, registered on import)."""

from restore.archs.vgg.arch import VGGFeatureExtractor, layer_names
from restore.archs.vgg.weights import ENV_VAR, resolve_vgg_weights

__all__ = ["ENV_VAR", "VGGFeatureExtractor", "layer_names", "resolve_vgg_weights"]
