"""From file bytes to model input: safe image decoding, worker processes, the GPU JPEG path."""
