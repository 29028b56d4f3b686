"""Systems under test: how to start, supervise and stop them."""
