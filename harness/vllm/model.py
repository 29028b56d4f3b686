"""A tiny Llama built locally, byte for byte the same every time: vLLM needs real weights.

No model hub is reachable from the machines this runs on, so the stack writes its own model: a
two-layer Llama with random weights drawn from a fixed seed, saved as safetensors, and the
word-level tokenizer of `harness.llm.tinyllm` (one word per token, so a streamed token is one
visible word). Rebuilt with the same settings, every file has the same bytes: the folder's
digest names it in a cache, and a test checks it.

Shapes that vLLM's CPU attention accepts: `head_dim` 32 or more (16 starts, then kills the
engine on the first request with "Unsupported CPU attention configuration").
"""

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from harness.llm.tinyllm import SPECIAL, vocabulary, write_model

WEIGHTS = "model.safetensors"
STAMP = "harness-model.json"  # written last: a folder without it is half-built and rebuilt
SUPPORTED_HEAD_DIMS = (32, 64, 80, 96, 112, 128, 160, 192, 224, 256, 512)


@dataclass(frozen=True)
class TinyLlama:
    hidden: int = 64
    layers: int = 2
    heads: int = 2
    kv_heads: int = 2
    head_dim: int = 32
    intermediate: int = 128
    max_positions: int = 8192
    seed: int = 0

    def config(self, vocab_size: int) -> dict[str, Any]:
        return {
            "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": vocab_size,
            "hidden_size": self.hidden, "intermediate_size": self.intermediate,
            "num_hidden_layers": self.layers, "num_attention_heads": self.heads,
            "num_key_value_heads": self.kv_heads, "head_dim": self.head_dim,
            "max_position_embeddings": self.max_positions, "rms_norm_eps": 1e-5,
            "bos_token_id": 1, "eos_token_id": 2, "tie_word_embeddings": False,
            "torch_dtype": "float32",
        }

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


def tensor_shapes(shape: TinyLlama, vocab_size: int) -> dict[str, tuple[int, ...]]:
    """Every tensor of a Llama checkpoint as transformers names them, in a fixed order."""
    q, kv = shape.heads * shape.head_dim, shape.kv_heads * shape.head_dim
    tensors: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (vocab_size, shape.hidden)}
    for layer in range(shape.layers):
        prefix = f"model.layers.{layer}"
        tensors.update({
            f"{prefix}.input_layernorm.weight": (shape.hidden,),
            f"{prefix}.post_attention_layernorm.weight": (shape.hidden,),
            f"{prefix}.self_attn.q_proj.weight": (q, shape.hidden),
            f"{prefix}.self_attn.k_proj.weight": (kv, shape.hidden),
            f"{prefix}.self_attn.v_proj.weight": (kv, shape.hidden),
            f"{prefix}.self_attn.o_proj.weight": (shape.hidden, q),
            f"{prefix}.mlp.gate_proj.weight": (shape.intermediate, shape.hidden),
            f"{prefix}.mlp.up_proj.weight": (shape.intermediate, shape.hidden),
            f"{prefix}.mlp.down_proj.weight": (shape.hidden, shape.intermediate),
        })
    tensors["model.norm.weight"] = (shape.hidden,)
    tensors["lm_head.weight"] = (vocab_size, shape.hidden)
    return tensors


def _weights(shape: TinyLlama, vocab_size: int) -> dict[str, Any]:
    import numpy as np

    rng = np.random.default_rng(shape.seed)
    out: dict[str, Any] = {}
    for name, dims in tensor_shapes(shape, vocab_size).items():
        if name.endswith("layernorm.weight") or name == "model.norm.weight":
            out[name] = np.ones(dims, dtype=np.float32)
        else:
            out[name] = (rng.standard_normal(dims, dtype=np.float32) * 0.05).astype(np.float32)
    # Special tokens get a zero output row, so greedy decoding never picks one: every generated
    # token is then a visible word and the stream's chunks and tokens agree.
    out["lm_head.weight"][: len(SPECIAL)] = 0.0
    return out


def build(folder: Path, shape: TinyLlama | None = None) -> Path:
    """Write the model into `folder` unless a complete one with the same shape is there."""
    shape = shape or TinyLlama()
    if shape.head_dim not in SUPPORTED_HEAD_DIMS:
        raise ValueError(f"head_dim {shape.head_dim} is not one vLLM's CPU attention supports "
                         f"({', '.join(map(str, SUPPORTED_HEAD_DIMS))})")
    stamp = folder / STAMP
    if stamp.exists() and json.loads(stamp.read_text(encoding="utf-8")).get("digest") == shape.digest():
        return folder
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    write_model(folder)  # tokenizer, tokenizer_config (chat template), generation_config
    vocab_size = len(vocabulary())
    _write_json(folder / "config.json", shape.config(vocab_size))
    _write_atomically(folder / WEIGHTS, lambda tmp: save_file(_weights(shape, vocab_size), str(tmp)))
    _write_json(stamp, {"digest": shape.digest(), "shape": asdict(shape)})
    return folder


def cached(cache_root: Path, shape: TinyLlama | None = None) -> Path:
    """The model in a cache folder named by its shape's digest (built on first use)."""
    shape = shape or TinyLlama()
    return build(cache_root / f"tiny-llama-{shape.digest()}", shape)


def folder_digest(folder: Path) -> str:
    """sha256 over every file's name and bytes: equal for two identical builds."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")


def _write_atomically(path: Path, write: Any) -> None:
    """Two runs building one cache at once never see half a weights file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
