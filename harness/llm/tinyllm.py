"""A tiny offline "model" folder for LLM engines that need only a tokenizer: no hub, no weights.

The folder is laid out like a Hugging Face model (tokenizer.json, tokenizer_config.json with a
chat template, a llama-like config.json, generation_config.json). The vocabulary is plain words
`w0 w1 ...` so every token id decodes to visible text, one word per token: a streamed response
then carries exactly one token per chunk, which is what TTFT and inter-token latency need.
"""

import json
from pathlib import Path

SPECIAL = ("<unk>", "<s>", "</s>")
WORDS = 512
# Prompts use these words; anything else maps to <unk> (still one token per word).
PROMPT_WORDS = ("hello", "world", "the", "a", "of", "to", "and", "is", "in", "it", "you", "that")
CHAT_TEMPLATE = "{% for m in messages %}{{ m['content'] }} {% endfor %}"


def vocabulary() -> dict[str, int]:
    words = [*SPECIAL, *(f"w{i}" for i in range(WORDS)), *PROMPT_WORDS]
    return {word: index for index, word in enumerate(words)}


def output_token_ids(count: int) -> list[int]:
    """Ids of `w0 w1 ...`, cycling, for `count` generated tokens (never a special token)."""
    first = len(SPECIAL)
    return [first + i % WORDS for i in range(count)]


def write_model(folder: Path) -> Path:
    """Write the folder (idempotent); returns it."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    folder.mkdir(parents=True, exist_ok=True)
    vocab = vocabulary()
    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.decoder = decoders.WordPiece(prefix="##")  # words joined by spaces when decoded
    tokenizer.save(str(folder / "tokenizer.json"))
    _write_json(folder / "tokenizer_config.json", {
        "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "model_max_length": 8192,
        "tokenizer_class": "PreTrainedTokenizerFast", "chat_template": CHAT_TEMPLATE,
    })
    _write_json(folder / "config.json", {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": len(vocab),
        "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 4, "max_position_embeddings": 8192, "bos_token_id": 1,
        "eos_token_id": 2, "torch_dtype": "float16",
    })
    _write_json(folder / "generation_config.json", {"bos_token_id": 1, "eos_token_id": 2})
    return folder


def _write_json(path: Path, data: dict[str, object]) -> None:
    path.write_text(json.dumps(data, indent=1), encoding="utf-8")
