"""Libraries on disk: scanning, safe decoding, the SQL store, the vector index, indexing.

Built on ``encoders`` (the Encoder embeds); knows nothing of search, the CLI or the UI.
"""
