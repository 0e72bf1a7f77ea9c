"""digital-mask: de-identify eye-care videos by re-rendering eye, lid and head motion on a template face."""

__version__ = "0.1.0"
