"""Models: the ViT and text towers, CLIP, tokenizers, checkpoints, training and the Encoder.

The lowest layer: it knows nothing of FAISS, SQL or the CLI, and everything above imports it.
"""
