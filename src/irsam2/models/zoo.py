"""Imports every deep baseline so that it registers itself (``irsam2.models.registry.register_network``)."""
