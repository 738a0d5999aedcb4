"""faceexp's version, recorded in every file the package writes."""
__version__ = "0.1.0"
