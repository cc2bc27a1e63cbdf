"""A GGUF file written the way llama.cpp's ``convert_hf_to_gguf.py`` writes a Llama, from a tiny
random-weight ``LlamaForCausalLM`` and a byte-level BPE tokenizer (SmolLM2's kind: ``gpt2``).

F32 tensors, so transformers' dequantization is the identity and the converted model's logits
must equal the original's.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from gguf import GGUFWriter, TokenType

# HF parameter name (inside ``model.``) -> llama.cpp tensor name
LAYER_TENSORS = {
    "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm",
    "post_attention_layernorm": "ffn_norm",
}


def permute(weights: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's Q/K permutation (HF's rotary halves -> interleaved pairs)."""
    return (weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def write_llama_gguf(path: Path, model, tokenizer, *, bos: str, eos: str, pad: str | None,
                     unk: str | None = None, add_bos: bool | None = False,
                     name: str = "tiny-llama") -> Path:
    """Write ``model`` (a ``LlamaForCausalLM``) and ``tokenizer`` (a byte-level BPE fast
    tokenizer) as a llama.cpp GGUF at ``path``; ``bos``/``eos``/``pad``/``unk`` are token
    strings for the metadata's ids, ``add_bos`` its ``tokenizer.ggml.add_bos_token``
    (None: not written)."""
    config = model.config
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    writer = GGUFWriter(path, "llama")
    writer.add_name(name)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_rope_freq_base(float(config.rope_theta))
    writer.add_layer_norm_rms_eps(float(config.rms_norm_eps))
    writer.add_rope_dimension_count(head_dim)
    writer.add_vocab_size(config.vocab_size)
    writer.add_file_type(0)  # all F32

    vocab = tokenizer.backend_tokenizer.get_vocab(with_added_tokens=True)
    tokens = [token for token, _ in sorted(vocab.items(), key=lambda item: item[1])]
    assert len(tokens) == config.vocab_size and vocab[tokens[-1]] == len(tokens) - 1
    merges = json.loads(tokenizer.backend_tokenizer.to_str())["model"]["merges"]
    merges = [m if isinstance(m, str) else " ".join(m) for m in merges]
    special = set(tokenizer.all_special_tokens)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types([TokenType.CONTROL if token in special else TokenType.NORMAL
                            for token in tokens])
    writer.add_token_merges(merges)
    writer.add_bos_token_id(vocab[bos])
    writer.add_eos_token_id(vocab[eos])
    if unk is not None:
        writer.add_unk_token_id(vocab[unk])
    if pad is not None:
        writer.add_pad_token_id(vocab[pad])
    if add_bos is not None:
        writer.add_add_bos_token(add_bos)

    state = {key: value.detach().float().numpy() for key, value in model.state_dict().items()}
    writer.add_tensor("token_embd.weight", state["model.embed_tokens.weight"])
    for block in range(config.num_hidden_layers):
        for hf_name, gguf_name in LAYER_TENSORS.items():
            weights = state[f"model.layers.{block}.{hf_name}.weight"]
            if gguf_name == "attn_q":
                weights = permute(weights, config.num_attention_heads)
            elif gguf_name == "attn_k":
                weights = permute(weights, config.num_key_value_heads)
            writer.add_tensor(f"blk.{block}.{gguf_name}.weight", np.ascontiguousarray(weights))
    writer.add_tensor("output_norm.weight", state["model.norm.weight"])
    if not config.tie_word_embeddings:  # a tied model has no output.weight (llama.cpp omits it)
        writer.add_tensor("output.weight", state["lm_head.weight"])

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
