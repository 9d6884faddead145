"""Imports every deep baseline so that it registers itself (``irsam2.models.registry.register_network``)."""

from irsam2.models import acm, dnanet, sctransnet, uiunet, unet

__all__ = ["acm", "dnanet", "sctransnet", "uiunet", "unet"]
