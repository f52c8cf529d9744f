"""t360: bulk uploader for the Track360 attribution API."""

__version__ = "0.1.0"
