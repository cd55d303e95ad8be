"""Training: data, losses live in encoders/; optimiser, loop and entry point here."""
