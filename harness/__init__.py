"""Load testing and fault injection for ML inference serving stacks."""

__version__ = "0.1.0"
