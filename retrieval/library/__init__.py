"""A library opened for reading: the handle that wires encoder, vectors and store; the files it may
serve."""
