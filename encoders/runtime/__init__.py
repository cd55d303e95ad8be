"""Running a model: the device spec, what a device does natively, the measured precision, the
Encoder, its compiled towers, the packed text tower and the one zero-shot classifier builder."""
