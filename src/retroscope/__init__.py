"""retroscope: simulate, train and invert single-shot AMO and X-ray measurements."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("retroscope")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"
