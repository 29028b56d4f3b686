"""GPUs: NVML observations, the GPU memory stressor fault, and the report's GPU section."""
