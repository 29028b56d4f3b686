"""Triton Inference Server: its stack kind, model zoo, install, user classes."""
