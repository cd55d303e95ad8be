"""Running a model: the device spec, the Encoder (batching, precision, compile), the packed text
tower."""
