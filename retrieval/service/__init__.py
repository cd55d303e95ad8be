"""What the front ends share: thread settings, background jobs, uploads, the demo library."""
