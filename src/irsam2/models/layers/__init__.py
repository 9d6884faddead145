"""Building blocks shared by the IR-SAM2 network (spec sections 2, 3 and 5)."""

from irsam2.models.layers.dense_pe import DensePositionalEncoding
from irsam2.models.layers.norm import LayerNorm2d
from irsam2.models.layers.prompt_generator import PromptGenerator
from irsam2.models.layers.rc_block import CBAM, RCBlock

__all__ = ["CBAM", "DensePositionalEncoding", "LayerNorm2d", "PromptGenerator", "RCBlock"]
