"""Zero-shot labels of a library and their export."""
