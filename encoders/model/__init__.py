"""The CLIP model itself: configs and their limits, layers, the ViT, the text towers, starting
weights, tokenizers, preprocessing."""
