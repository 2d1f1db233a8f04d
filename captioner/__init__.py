"""captioner: CNN+RNN image captioning, tagging and caption sentiment."""

from captioner.api import Captioner, Description

__all__ = ["Captioner", "Description"]
__version__ = "0.1.0"
