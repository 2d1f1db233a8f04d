"""captioner: CNN+RNN image captioning, tagging and caption sentiment.

`from captioner import Captioner` loads the facade on first use, so command-line tools that
only need a submodule do not pay for importing torch, nltk and the models.
"""

from typing import TYPE_CHECKING

__all__ = ["Captioner", "Description", "GenerationConfig"]
__version__ = "0.1.0"

if TYPE_CHECKING:
    from captioner.api import Captioner, Description
    from captioner.decoding import GenerationConfig


def __getattr__(name: str):
    if name == "GenerationConfig":
        from captioner.decoding import GenerationConfig

        return GenerationConfig
    if name in __all__:
        from captioner import api

        return getattr(api, name)
    raise AttributeError(f"module 'captioner' has no attribute {name!r}")
