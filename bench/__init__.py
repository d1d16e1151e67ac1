"""dreambench harness: CLI, run configs, registries, the runner loop and the run directory.

Knows nothing about diffusion; importing it must not import torch.
"""

__version__ = "0.1.0"
