"""Locust user classes, one module per protocol. Registered under the `harness.users` group."""
