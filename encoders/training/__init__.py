"""Training: captioned data, optimiser, training loop and the train/finetune entry points."""
