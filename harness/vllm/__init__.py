"""vLLM: its stack kind, the tiny model it serves, and what its /metrics holds."""
