"""GPUs: NVML observations."""
