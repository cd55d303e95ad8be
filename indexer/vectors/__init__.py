"""The FAISS side of a library: the index kinds, int8 exact scan, re-ranked approximate kinds,
files."""
