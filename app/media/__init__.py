"""Media from clients (images for vision models): checked with Pillow, cleaned and stored by hash."""

from app.media.images import ImageLimits, ImageStore, decode_data_url

__all__ = ["ImageLimits", "ImageStore", "decode_data_url"]
