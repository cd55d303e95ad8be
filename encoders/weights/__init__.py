"""Checkpoints (safetensors + JSON config) and open_clip pretrained weights."""
