"""The builder of the offline default policy: a tiny 12-block GPT-Neo taught the builtin corpus.

It has gpt-neo-125m's depth and block layout (alternating global/local attention), so ``layers``
means the same thing, at a width that trains in under a minute on two CPU cores. Its byte-level
BPE tokenizer is trained on the same corpus and saved beside it, like a real checkpoint's.

The pipeline does not run this: floating point differs between CPU types, so the weights it
trains differ too. It ran once, and its output is shipped in ``tiny-gpt-neo/`` beside it, which
``download_lm`` copies. To rebuild it (then compare it with the shipped one, which
``tests/test_builtin_policy.py`` does by quality, not by bytes):

    python -m detox.download.builtin.tiny_model --out <folder>
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from tqdm.auto import tqdm
from transformers import GPTNeoConfig, GPTNeoForCausalLM, PreTrainedTokenizerFast

from detox.download.builtin import corpus

EOS = "<|endoftext|>"


def train_tokenizer(texts: list[str], vocab_size: int = 1024) -> PreTrainedTokenizerFast:
    """Byte-level BPE like GPT-2's; pad = eos, as for gpt-neo-125m."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOS],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tokenizer.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token=EOS, bos_token=EOS,
                                   unk_token=EOS, pad_token=EOS,
                                   model_input_names=["input_ids", "attention_mask"])


def build_policy(seed: int, steps: int = 300, batch_size: int = 64, corpus_size: int = 3000,
                 ) -> tuple[GPTNeoForCausalLM, PreTrainedTokenizerFast]:
    """Train the tiny GPT-Neo for ``steps`` batches of next-token prediction on the corpus."""
    # An independent draw from the prompt sets' (which use ``seed``).
    rows = [row for family in corpus.FAMILIES
            for row in corpus.generate(family, corpus_size, seed + 1)]
    texts = [f"{row['prompt']} {row['continuation']}" for row in rows]
    tokenizer = train_tokenizer(texts)
    encoded = [tokenizer(text + EOS)["input_ids"] for text in texts]
    max_len = max(len(ids) for ids in encoded)

    torch.manual_seed(seed)
    config = GPTNeoConfig(
        vocab_size=len(tokenizer), max_position_embeddings=128, hidden_size=64, num_layers=12,
        num_heads=4, intermediate_size=256, attention_types=[[["global", "local"], 6]],
        window_size=32, bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
    )
    model = GPTNeoForCausalLM(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - step / steps)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in tqdm(range(steps), desc="training the builtin policy", unit="step"):
        batch = torch.randint(len(encoded), (batch_size,), generator=generator).tolist()
        input_ids = torch.full((batch_size, max_len), tokenizer.eos_token_id)
        labels = torch.full((batch_size, max_len), -100)
        for row, index in enumerate(batch):
            ids = torch.tensor(encoded[index])
            input_ids[row, : len(ids)] = ids
            labels[row, : len(ids)] = ids
        loss = model(input_ids=input_ids, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
    model.eval()
    return model, tokenizer


def save_policy(dest: Path) -> None:
    """Build the policy from the corpus's seed and save it with its tokenizer into ``dest``."""
    model, tokenizer = build_policy(corpus.SEED)
    model.save_pretrained(dest)
    tokenizer.save_pretrained(dest)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder to save it in")
    save_policy(parser.parse_args(argv).out)


if __name__ == "__main__":
    main()
