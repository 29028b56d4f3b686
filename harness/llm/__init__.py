"""LLM load: the openai user's per-request measures as SLO metrics and report sections."""
