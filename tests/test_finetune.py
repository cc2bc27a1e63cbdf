"""sft and dpo on small real data: the targets and pairs they pick from scored samples, what
training changes (only the trainable tensors) and that it learns (the loss on its own examples
falls); the clear errors when the threshold or margin leaves nothing to learn from."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import AutoModelForCausalLM

from detox import DetoxError
from detox.params import parse
from detox.train.dpo import dpo_pairs, train_dpo
from detox.train.finetune import trainable_lm
from detox.train.policy import merged
from detox.train.params import AdapterParams, DPOParams, SFTParams
from detox.train.sft import IGNORE, sft_examples, sft_targets, train_sft

CPU = torch.device("cpu")
PROMPTS = ["you are a", "honestly they are", "the referee is a", "shut up , you"]
GOOD = [" kind friend .", " helpful and patient .", " fair person .", " thoughtful ."]
BAD = [" stupid idiot .", " worthless losers .", " pathetic clown .", " dumb moron ."]


@pytest.fixture(scope="module")
def samples(tokenizer) -> pd.DataFrame:
    """Four prompts with four scored samples each, in data/samples/train.parquet's layout: per
    prompt one clean, one toxic and two in between."""
    rows = []
    for prompt_id, (prompt, good, bad) in enumerate(zip(PROMPTS, GOOD, BAD)):
        for sample, (text, toxicity) in enumerate(
                [(bad, 0.97), (good, 0.02 + 0.01 * prompt_id), (bad, 0.6), (good, 0.3)]):
            ids = tokenizer(text)["input_ids"] + [tokenizer.eos_token_id]
            rows.append({"prompt_id": prompt_id, "prompt": prompt,
                         "prompt_ids": tokenizer(prompt)["input_ids"], "sample": sample,
                         "continuation": text, "continuation_ids": ids, "ended_with_eos": True,
                         "toxicity": toxicity})
    return pd.DataFrame(rows)


def settings(schema, committed_params, section: str, **changes):
    return parse(schema, {**committed_params[section], **changes}, f"{section}.")


def adapter(committed_params) -> AdapterParams:
    return parse(AdapterParams, committed_params["adapter"], "adapter.")


def loss_on(model, examples) -> float:
    """Mean token loss of ``model`` on the examples' labelled tokens."""
    total, count = 0.0, 0
    with torch.no_grad():
        for ids, labels in zip(examples["input_ids"], examples["labels"]):
            out = model(input_ids=torch.tensor([ids]), labels=torch.tensor([labels]))
            n = sum(label != IGNORE for label in labels)
            total, count = total + float(out.loss) * n, count + n
    return total / count


def test_sft_targets_are_each_prompts_least_toxic_sample_under_the_threshold(samples):
    targets = sft_targets(samples, max_toxicity=0.025)
    # prompt 0's best scores 0.02, prompt 1's 0.03: only the first is under 0.025
    assert targets["prompt_id"].tolist() == [0]
    assert targets["best_continuation"].tolist() == [GOOD[0]]
    assert len(sft_targets(samples, 0.5)) == 4


def test_sft_examples_learn_the_target_only(samples, tokenizer):
    targets = sft_targets(samples, 0.5)
    examples = sft_examples(targets)
    for prompt, target, labels in zip(targets["prompt_ids"], targets["best_continuation_ids"],
                                      examples["labels"]):
        assert labels == [IGNORE] * len(prompt) + list(target)


def test_sft_changes_only_the_trainable_tensors_and_lowers_the_loss_on_its_targets(
        samples, tokenizer, tiny_neo_dir, committed_params):
    model, _ = trainable_lm(tiny_neo_dir, 3, CPU, 0, adapter(committed_params))
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    targets = sft_targets(samples, 0.5)
    loss_before = loss_on(model, sft_examples(targets))
    params = settings(SFTParams, committed_params, "sft", epochs=20, batch_size=4,
                      learning_rate=1e-2)
    steps, log = train_sft(model, tokenizer, targets, params, 0, CPU, "fp32")
    assert steps == 20 and len(log) == 20
    after = dict(model.named_parameters())
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert changed and changed <= trainable
    # the top 3 of 12 blocks and the final layer norm, as PPO's trainable part (less its head)
    assert all(name.startswith(("transformer.h.9.", "transformer.h.10.", "transformer.h.11.",
                                "transformer.ln_f.")) for name in trainable)
    assert any(name.startswith("transformer.h.9.") for name in changed)
    assert loss_on(model, sft_examples(targets)) < 0.7 * loss_before


def test_every_dpo_pair_has_the_chosen_less_toxic_than_the_rejected_by_the_margin(samples):
    pairs = dpo_pairs(samples, min_margin=0.9)
    assert len(pairs) == 4
    assert (pairs["rejected_toxicity"] - pairs["chosen_toxicity"] >= 0.9).all()
    assert pairs["chosen_continuation"].tolist() == GOOD
    assert pairs["rejected_continuation"].tolist() == BAD
    # a margin only prompt 0 meets (0.97 - 0.02)
    assert dpo_pairs(samples, 0.945)["prompt_id"].tolist() == [0]


def test_dpo_loss_falls_and_the_reference_stays_the_frozen_base(samples, tokenizer,
                                                               tiny_neo_dir, committed_params):
    model, reference = trainable_lm(tiny_neo_dir, 3, CPU, 0, adapter(committed_params))
    # the frozen part is shared, not copied: one tensor serves both models
    frozen = dict(reference.named_parameters())["transformer.h.0.attn.attention.q_proj.weight"]
    assert frozen.data_ptr() == dict(model.named_parameters())[
        "transformer.h.0.attn.attention.q_proj.weight"].data_ptr()
    reference_top = {name: p.detach().clone() for name, p in reference.named_parameters()}
    params = settings(DPOParams, committed_params, "dpo", epochs=15, batch_size=4,
                      learning_rate=1e-2)
    steps, log = train_dpo(model, reference, tokenizer, dpo_pairs(samples, 0.2), params, 0, CPU,
                           "fp32")
    assert steps == 15
    losses = [row["loss"] for row in log]
    assert losses[0] == pytest.approx(np.log(2), abs=1e-3)  # policy = reference at step 1
    assert np.mean(losses[-3:]) < 0.5 * losses[0]
    assert log[-1]["rewards_accuracies"] == 1.0
    assert all(torch.equal(p, reference_top[name]) for name, p in reference.named_parameters())


@pytest.mark.parametrize("method", ["sft", "dpo"])
def test_an_sft_or_dpo_folder_loads_with_from_pretrained(method, samples, tokenizer,
                                                        tiny_neo_dir, committed_params, tmp_path):
    model, reference = trainable_lm(tiny_neo_dir, 2, CPU, 0, adapter(committed_params))
    if method == "sft":
        train_sft(model, tokenizer, sft_targets(samples, 0.5),
                  settings(SFTParams, committed_params, "sft", epochs=1, batch_size=4), 0, CPU,
                  "fp32")
    else:
        train_dpo(model, reference, tokenizer, dpo_pairs(samples, 0.2),
                  settings(DPOParams, committed_params, "dpo", epochs=1, batch_size=4), 0, CPU,
                  "fp32")
    merged(model).save_pretrained(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert all(torch.equal(p, dict(model.named_parameters())[name])
               for name, p in loaded.named_parameters())


def test_nothing_to_learn_from_is_one_clear_error(samples):
    with pytest.raises(DetoxError, match=r"none of the 4 prompts' 16 scored samples is toxic "
                                         r"less than sft.max_toxicity=0.01 \(the least toxic one "
                                         r"scores 0.020\)"):
        sft_targets(samples, 0.01)
    with pytest.raises(DetoxError, match=r"differ by dpo.min_margin=0.99 \(16 scored samples "
                                         r"of 4 prompts\)"):
        dpo_pairs(samples, 0.99)


def log_likelihood(model, prompt: list[int], answer: list[int]) -> float:
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([prompt + answer])).logits[0, len(prompt) - 1:-1]
    return float(logits.log_softmax(-1).gather(1, torch.tensor(answer)[:, None]).sum())


def test_dpo_learns_from_the_sampled_ids_not_from_the_text(samples, tokenizer, tiny_neo_dir,
                                                          committed_params):
    """The pairs' texts say the opposite of their ids: training must follow the ids."""
    pairs = dpo_pairs(samples, 0.2)
    pairs["chosen_continuation"], pairs["rejected_continuation"] = (
        pairs["rejected_continuation"], pairs["chosen_continuation"])
    model, reference = trainable_lm(tiny_neo_dir, 3, CPU, 0, adapter(committed_params))

    def preference() -> float:
        return float(np.mean([
            log_likelihood(model, list(p), list(c)) - log_likelihood(model, list(p), list(r))
            for p, c, r in zip(pairs["prompt_ids"], pairs["chosen_continuation_ids"],
                               pairs["rejected_continuation_ids"])]))

    before = preference()
    train_dpo(model, reference, tokenizer, pairs,
              settings(DPOParams, committed_params, "dpo", epochs=10, batch_size=4,
                       learning_rate=1e-2), 0, CPU, "fp32")
    assert preference() > before + 1


def test_dpo_under_lora_needs_no_reference_copy_and_saves_a_plain_model(
        samples, tokenizer, tiny_neo_dir, committed_params, lora, tmp_path):
    model, reference = trainable_lm(tiny_neo_dir, 3, CPU, 0, lora)
    assert reference is None  # TRL scores the reference with the adapter disabled
    steps, log = train_dpo(model, None, tokenizer, dpo_pairs(samples, 0.2),
                           settings(DPOParams, committed_params, "dpo", epochs=5, batch_size=4,
                                    learning_rate=1e-2), 0, CPU, "fp32")
    assert np.mean([row["loss"] for row in log[-2:]]) < log[0]["loss"]
    merged(model).save_pretrained(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    base = AutoModelForCausalLM.from_pretrained(tiny_neo_dir)
    assert type(loaded) is type(base)
    changed = {name for name, p in loaded.named_parameters()
               if not torch.equal(p, dict(base.named_parameters())[name])}
    assert changed and all(name.startswith(("transformer.h.9.", "transformer.h.10.",
                                            "transformer.h.11.")) for name in changed)
