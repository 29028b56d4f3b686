"""Docker for the harness: reaching an engine, the local image, containers it labels and owns."""
