"""Captioned data sets: the synthetic shape families, their drawing, files on disk, the digits
set."""
