"""Videos: what a video file is (probing, with guards against broken files and video bombs) and
which of its frames to index (keyframes, scene changes, a frame every few seconds, near-identical
neighbours dropped), decoded with PyAV (FFmpeg)."""
