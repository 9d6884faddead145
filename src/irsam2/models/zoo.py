"""Imports every deep baseline so that it registers itself (``irsam2.models.registry.register_network``)."""

from irsam2.models import acm, alcnet, dnanet, mshnet, sctransnet, uiunet, unet

__all__ = ["acm", "alcnet", "dnanet", "mshnet", "sctransnet", "uiunet", "unet"]
