"""Fault plugins. Each is found through the `harness.faults` entry-point group."""
