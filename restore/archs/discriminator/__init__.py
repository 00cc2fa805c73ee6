"""Discriminators for adversarial training (``network_d``): ``UNetDiscriminatorSN`` (registered on import)."""

from restore.archs.discriminator.unet import UNetDiscriminatorSN

__all__ = ["UNetDiscriminatorSN"]
