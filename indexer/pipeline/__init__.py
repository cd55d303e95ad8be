"""An indexing run: scan, the shared run steps, the local engine and its writer, the Ray engine."""
