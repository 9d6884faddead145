"""Training, evaluation and inference engines (DESIGN.md: engine/).

Kept free of imports so that ``import irsam2.engine.<module>`` pays only for that module.
"""
