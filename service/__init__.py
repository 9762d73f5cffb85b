"""The recognition service: onnxruntime + FastAPI over an exported model and its card.

Never imports torch or ``training``; the ONNX file and its card are all it takes from training.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("masksem")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
