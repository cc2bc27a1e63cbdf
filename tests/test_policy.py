"""The trainable policy: the top-N blocks and the final norm train; the embeddings, the blocks
below and the output head (tied or not) are frozen and shared with the reference model, on
GPT-Neo, GPT-2 and Llama; parameter counts match the paper for gpt-neo-125m; LoRA's targets
default to peft's per architecture."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING
from transformers import (AutoModelForCausalLM, GPTNeoConfig, GPTNeoForCausalLM, Olmo2Config,
                          Olmo2ForCausalLM)
from trl import PPOConfig, PPOTrainer

from detox import DetoxError
from detox.models import load_causal_lm, load_tokenizer, require_context
from detox.train.policy import count_parameters, load_trainable, model_to_save

CPU = torch.device("cpu")
BLOCKS = 12
GPT_NEO_LINEARS = ["q_proj", "k_proj", "v_proj", "out_proj", "c_fc", "c_proj"]


# --- gpt-neo-125m shape: the paper's numbers -------------------------------------------------

@pytest.fixture(scope="module")
def neo125m(tmp_path_factory):
    """A random-weight model with gpt-neo-125m's exact shape, saved once for this module."""
    path = tmp_path_factory.mktemp("gpt-neo-125m-shaped")
    config = GPTNeoConfig(vocab_size=50257, hidden_size=768, num_layers=12, num_heads=12,
                          attention_types=[[["global", "local"], 6]], window_size=256,
                          max_position_embeddings=2048)
    torch.manual_seed(0)
    model = GPTNeoForCausalLM(config)
    base_params = sum(p.numel() for p in model.parameters())
    model.save_pretrained(path)
    del model
    policy, reference = load_trainable(str(path), 8, CPU, seed=0)
    yield {"policy": policy, "reference": reference, "base_params": base_params, "path": path}
    del policy, reference


def test_paper_parameter_counts_for_gpt_neo_125m(neo125m):
    counts = count_parameters(neo125m["policy"])
    # the paper: 56,686,849 trainable parameters (45.28%) with the top 8 of 12 blocks trainable
    assert counts["trainable_params"] == 56_686_849
    assert round(counts["trainable_fraction"], 4) == 0.4528
    # total = the causal LM (lm_head tied to the embeddings) + a 768 -> 1 value head
    assert counts["total_params"] == neo125m["base_params"] + 768 + 1
    assert counts["trainable_fraction"] == round(counts["trainable_params"]
                                                 / counts["total_params"], 6)


def test_gpt_neo_125m_reference_shares_the_frozen_bottom(neo125m):
    policy, reference = neo125m["policy"], neo125m["reference"]
    wte = policy.pretrained_model.transformer.wte.weight
    assert reference.pretrained_model.transformer.wte.weight is wte
    assert reference.pretrained_model.transformer.h[3].mlp.c_fc.weight \
        is policy.pretrained_model.transformer.h[3].mlp.c_fc.weight
    assert reference.pretrained_model.transformer.h[4].mlp.c_fc.weight \
        is not policy.pretrained_model.transformer.h[4].mlp.c_fc.weight


@pytest.mark.parametrize("targets, per_block, trainable, names", [
    # the default, peft's for gpt_neo: rank 8 on q and v (768 -> 768)
    (None, 8 * 2 * (768 + 768), 197_377, "q_proj, v_proj"),
    # GPT-Neo's attention and MLP linears: q, k, v, out (768 -> 768), c_fc, c_proj (768 <-> 3072)
    (GPT_NEO_LINEARS, 8 * (4 * (768 + 768) + 2 * (768 + 3072)), 885_505,
     "c_fc, c_proj, k_proj, out_proj, q_proj, v_proj")])
def test_lora_on_gpt_neo_125m_trains_under_one_percent(neo125m, lora, targets, per_block,
                                                       trainable, names):
    adapter = dataclasses.replace(lora, target_modules=targets)
    policy, reference = load_trainable(neo125m["path"], 8, CPU, seed=0, adapter=adapter)
    counts = count_parameters(policy)
    assert counts["trainable_params"] == 8 * per_block + 768 + 1 == trainable  # + value head
    assert counts["total_params"] == neo125m["base_params"] + 8 * per_block + 768 + 1
    assert counts["lora_target_modules"] == names  # what metrics/train.json and the card say
    assert reference is None


# --- sharing and freezing on a tiny 12-block model -------------------------------------------

def block_of(name: str) -> int | None:
    parts = name.split(".")
    return int(parts[3]) if parts[:3] == ["pretrained_model", "transformer", "h"] else None


def expected_trainable(name: str, layers: int) -> bool:
    block = block_of(name)
    if block is not None:
        return block >= BLOCKS - layers
    # outside the blocks: embeddings are frozen; final norm and value head train
    return not any(part in name for part in ("transformer.wte.", "transformer.wpe."))


@pytest.mark.parametrize("layers", [1, 3, 8, 12])
def test_top_blocks_train_and_the_rest_is_frozen(tiny_neo_dir, layers):
    policy, reference = load_trainable(str(tiny_neo_dir), layers, CPU, seed=0)
    names = [name for name, _ in policy.named_parameters()]
    assert any(name.startswith("v_head.") for name in names)
    for name, param in policy.named_parameters():
        assert param.requires_grad == expected_trainable(name, layers), name
    assert not any(p.requires_grad for p in reference.parameters())
    trainable_blocks = {block_of(n) for n, p in policy.named_parameters()
                        if p.requires_grad and block_of(n) is not None}
    assert trainable_blocks == set(range(BLOCKS - layers, BLOCKS))


@pytest.mark.parametrize("layers", [3, 12])
def test_frozen_params_are_shared_and_trainable_ones_copied(tiny_neo_dir, layers):
    policy, reference = load_trainable(str(tiny_neo_dir), layers, CPU, seed=0)
    shared = copied = 0
    for name, param in policy.named_parameters():
        ref_param = reference.get_parameter(name)
        if param.requires_grad:
            assert ref_param is not param, name
            assert ref_param.data_ptr() != param.data_ptr(), name
            assert torch.equal(ref_param, param), name  # an identical copy at the start
            copied += 1
        else:
            assert ref_param is param, name  # the very same tensor
            shared += 1
    assert shared > 0 and copied > 0
    # the reference's lm_head stays tied to the (shared) input embeddings
    wte = policy.pretrained_model.transformer.wte.weight
    assert reference.pretrained_model.lm_head.weight is wte
    assert policy.pretrained_model.lm_head.weight is wte
    # no duplicated storage for the frozen part
    ref_storage = {p.data_ptr() for p in reference.parameters()}
    policy_frozen = {p.data_ptr() for p in policy.parameters() if not p.requires_grad}
    assert policy_frozen <= ref_storage


def test_reference_is_unaffected_by_training_the_policy(tiny_neo_dir):
    policy, reference = load_trainable(str(tiny_neo_dir), 3, CPU, seed=0)
    ids = torch.tensor([[5, 17, 42, 8, 99]])
    with torch.no_grad():
        before = reference.pretrained_model(ids).logits
        assert torch.allclose(policy.pretrained_model(ids).logits, before)
        top = policy.pretrained_model.transformer.h[11].mlp.c_fc.weight
        top.add_(1.0)  # what an optimizer step does to a trainable block
        after = reference.pretrained_model(ids).logits
        assert torch.equal(before, after)
        assert not torch.allclose(policy.pretrained_model(ids).logits, before)


def test_value_head_is_seeded(tiny_neo_dir):
    first, _ = load_trainable(str(tiny_neo_dir), 2, CPU, seed=0)
    again, _ = load_trainable(str(tiny_neo_dir), 2, CPU, seed=0)
    other, _ = load_trainable(str(tiny_neo_dir), 2, CPU, seed=1)
    head = lambda model: model.v_head.summary.weight  # noqa: E731
    assert torch.equal(head(first), head(again))
    assert not torch.equal(head(first), head(other))
    # the language model itself comes from the checkpoint, whatever the seed
    assert torch.equal(first.pretrained_model.transformer.h[11].mlp.c_fc.weight,
                       other.pretrained_model.transformer.h[11].mlp.c_fc.weight)


@pytest.mark.parametrize("layers", [0, 13, -1])
def test_layers_out_of_range(tiny_neo_dir, layers):
    with pytest.raises(DetoxError) as info:
        load_trainable(str(tiny_neo_dir), layers, CPU, seed=0)
    message = str(info.value)
    assert f"layers={layers}" in message
    assert "between 1 and 12" in message
    assert "\n" not in message


def test_load_trainable_accepts_a_path_object(tiny_neo_dir):
    policy, _ = load_trainable(tiny_neo_dir, 2, CPU, seed=0)
    assert count_parameters(policy)["trainable_params"] > 0


def test_count_parameters_by_hand():
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    model[0].requires_grad_(False)
    counts = count_parameters(model)
    assert counts == {"trainable_params": 3 * 2 + 2, "total_params": 4 * 3 + 3 + 3 * 2 + 2,
                      "trainable_fraction": round(8 / 23, 6)}


# --- every family: GPT-Neo, GPT-2 (tied heads) and Llama (an untied head) --------------------

# (the blocks' prefix, the final norm's) of each family's policy parameters
LAYOUTS = {"gpt_neo": ("pretrained_model.transformer.h.", "pretrained_model.transformer.ln_f."),
           "gpt2": ("pretrained_model.transformer.h.", "pretrained_model.transformer.ln_f."),
           "llama": ("pretrained_model.model.layers.", "pretrained_model.model.norm.")}


def trains(family: str, name: str, layers: int) -> bool:
    """What trains without an adapter: the top blocks, the final norm and the value head;
    never the embeddings, the blocks below or the output head (tied or not)."""
    blocks, norm = LAYOUTS[family]
    if name.startswith(blocks):
        return int(name[len(blocks):].split(".")[0]) >= BLOCKS - layers
    return name.startswith((norm, "v_head."))


@pytest.mark.parametrize("family", list(LAYOUTS))
@pytest.mark.parametrize("layers", [1, 5, 12])
def test_every_family_trains_the_top_blocks_and_the_final_norm_only(family_dirs, family,
                                                                   layers):
    policy, reference = load_trainable(family_dirs[family], layers, CPU, seed=0)
    names = [name for name, _ in policy.named_parameters()]
    assert sum(name.startswith(LAYOUTS[family][0]) for name in names) > 0
    for name, param in policy.named_parameters():
        assert param.requires_grad == trains(family, name, layers), name
    assert not any(p.requires_grad for p in reference.parameters())
    head = policy.pretrained_model.get_output_embeddings().weight
    assert not head.requires_grad
    tied = head is policy.pretrained_model.get_input_embeddings().weight
    assert tied == (family != "llama")  # the fixture's Llama has its own output head


@pytest.mark.parametrize("family", list(LAYOUTS))
def test_every_family_s_reference_holds_the_policy_s_frozen_tensors_themselves(family_dirs,
                                                                              family):
    policy, reference = load_trainable(family_dirs[family], 4, CPU, seed=0)
    for name, param in policy.named_parameters():
        ref_param = reference.get_parameter(name)
        if param.requires_grad:
            assert ref_param is not param and ref_param.data_ptr() != param.data_ptr(), name
            assert torch.equal(ref_param, param), name  # an identical copy at the start
        else:
            assert ref_param is param, name  # the very same tensor
    model, ref_model = policy.pretrained_model, reference.pretrained_model
    assert ref_model.get_input_embeddings().weight is model.get_input_embeddings().weight
    assert ref_model.get_output_embeddings().weight is model.get_output_embeddings().weight
    # only the trainable part is held twice: every other storage is the policy's own
    counts = count_parameters(policy)
    storages = {p.untyped_storage().data_ptr(): p.numel()
                for model in (policy, reference) for p in model.parameters()}
    assert sum(storages.values()) == counts["total_params"] + counts["trainable_params"]


def test_llama_trainable_parameters_by_hand(tiny_llama_dir, make_tiny_llama):
    policy, _ = load_trainable(tiny_llama_dir, 3, CPU, seed=0)
    # a block 16 wide, 2 heads of 8 and 1 key-value head, MLP 32: q 16x16, k and v 16x8,
    # o 16x16, gate and up 16x32, down 32x16, two norms of 16
    block = 256 + 128 + 128 + 256 + 3 * 16 * 32 + 2 * 16
    counts = count_parameters(policy)
    # 3 blocks + the final norm + the value head; the untied 16 x vocabulary head is frozen
    assert counts["trainable_params"] == 3 * block + 16 + 17 == 7_041
    assert counts["total_params"] == sum(p.numel() for p in make_tiny_llama().parameters()) + 17
    assert "lora_target_modules" not in counts


def test_llama_reference_is_unaffected_by_training_the_policy(tiny_llama_dir):
    policy, reference = load_trainable(tiny_llama_dir, 3, CPU, seed=0)
    ids = torch.tensor([[5, 17, 42, 8, 99]])
    with torch.no_grad():
        before = reference.pretrained_model(ids).logits
        assert torch.allclose(policy.pretrained_model(ids).logits, before)
        policy.pretrained_model.model.layers[11].mlp.up_proj.weight.add_(1.0)
        policy.pretrained_model.model.norm.weight.add_(1.0)
        assert torch.equal(reference.pretrained_model(ids).logits, before)
        assert not torch.allclose(policy.pretrained_model(ids).logits, before)


@pytest.mark.parametrize("family, blocks, targets, per_block", [
    # peft's defaults: q and v (Llama's v is 16 -> 8, one key-value head); GPT-2's fused
    # c_attn (a Conv1D 16 -> 48)
    ("llama", "model.layers", {"q_proj", "v_proj"}, 8 * (16 + 16) + 8 * (16 + 8)),
    ("gpt2", "transformer.h", {"c_attn"}, 8 * (16 + 48)),
    ("gpt_neo", "transformer.h", {"q_proj", "v_proj"}, 2 * 8 * (16 + 16))])
def test_lora_default_targets_are_peft_s_for_each_family(family_dirs, lora, family, blocks,
                                                        targets, per_block):
    assert lora.target_modules is None  # the committed default
    policy, reference = load_trainable(family_dirs[family], 4, CPU, seed=0, adapter=lora)
    assert reference is None
    trainable = [name for name, p in policy.named_parameters() if p.requires_grad]
    assert all("lora_" in name or name.startswith("v_head.") for name in trainable)
    adapted = {name.split(".lora_")[0] for name in trainable if "lora_" in name}
    prefix = f"pretrained_model.base_model.model.{blocks}."
    assert {(int(name[len(prefix):].split(".")[0]), name.rpartition(".")[2])
            for name in adapted} == {(block, target) for block in range(8, 12)
                                     for target in targets}
    counts = count_parameters(policy)
    assert counts["trainable_params"] == 4 * per_block + 16 + 1
    assert counts["lora_target_modules"] == ", ".join(sorted(targets))


def test_an_architecture_peft_has_no_default_for_needs_explicit_targets(tmp_path, lora):
    torch.manual_seed(0)  # OLMo 2: Llama-like names, but not in peft's table
    Olmo2ForCausalLM(Olmo2Config(vocab_size=64, hidden_size=16, intermediate_size=32,
                                 num_hidden_layers=4, num_attention_heads=2,
                                 max_position_embeddings=32)).save_pretrained(tmp_path)
    with pytest.raises(DetoxError) as info:
        load_trainable(tmp_path, 2, CPU, seed=0, adapter=lora)
    message = str(info.value)
    assert message.startswith("params.yaml: adapter.target_modules=null is invalid")
    assert "'olmo2'" in message and "set adapter.target_modules" in message
    assert "\n" not in message
    explicit = dataclasses.replace(lora, target_modules=["q_proj", "v_proj"])
    policy, _ = load_trainable(tmp_path, 2, CPU, seed=0, adapter=explicit)
    assert count_parameters(policy)["lora_target_modules"] == "q_proj, v_proj"
    # without LoRA nothing needs naming: the blocks are found by shape
    policy, _ = load_trainable(tmp_path, 2, CPU, seed=0)
    assert {n.split(".")[3] for n, p in policy.named_parameters()
            if p.requires_grad and ".layers." in n} == {"2", "3"}


def test_lora_default_targets_missing_from_the_blocks_say_where_they_came_from(tiny_neo_dir,
                                                                              lora,
                                                                              monkeypatch):
    monkeypatch.setitem(TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING, "gpt_neo",
                        ["query_key_value"])
    with pytest.raises(DetoxError) as info:
        load_trainable(tiny_neo_dir, 4, CPU, seed=0, adapter=lora)
    assert str(info.value) == (
        "params.yaml: adapter.target_modules=null (peft's default for gpt_neo: "
        "['query_key_value']) is invalid: none of them found in the top 4 blocks of the policy")


# --- LoRA: adapters in the top blocks, the reference is the policy with its adapter disabled --

def lora_block(name: str) -> int | None:
    """The block of a LoRA weight (``...transformer.h.<i>.attn.attention.q_proj.lora_A...``)."""
    parts = name.split(".")
    return int(parts[parts.index("h") + 1]) if "lora_" in name else None


@pytest.mark.parametrize("layers", [1, 4, 12])
def test_lora_trains_only_adapters_in_the_top_blocks_and_the_value_head(tiny_neo_dir, lora,
                                                                        layers):
    policy, reference = load_trainable(tiny_neo_dir, layers, CPU, seed=0, adapter=lora)
    assert reference is None
    trainable = {name: p for name, p in policy.named_parameters() if p.requires_grad}
    assert all("lora_" in name or name.startswith("v_head.") for name in trainable)
    assert {lora_block(name) for name in trainable} - {None} == set(range(BLOCKS - layers, BLOCKS))
    # every target module of every top block is adapted, rank x (in + out) weights each
    linears = {name: module for name, module in policy.named_modules()
               if isinstance(module, torch.nn.Linear) and ".base_layer" in name}
    expected = sum(lora.rank * (m.in_features + m.out_features) for m in linears.values())
    assert lora.target_modules is None  # the committed default: peft's table for gpt_neo
    assert {name.split(".")[-2] for name in linears} == {"q_proj", "v_proj"}
    assert len(linears) == layers * 2
    assert count_parameters(policy)["trainable_params"] == expected + 16 + 1  # + value head


def test_lora_reference_is_the_base_model_and_no_base_weight_is_copied(tiny_neo_dir, tiny_neo,
                                                                       lora):
    policy, reference = load_trainable(tiny_neo_dir, 4, CPU, seed=0, adapter=lora)
    with torch.no_grad():  # LoRA starts as a no-op (B = 0): make the adapter change the output
        for name, param in policy.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)
    trainer = PPOTrainer(PPOConfig(batch_size=2, mini_batch_size=1), policy, reference,
                         load_tokenizer(tiny_neo_dir))
    # TRL holds no reference model: it scores the reference with the adapter disabled
    assert trainer.ref_model is None and trainer.is_peft_model
    ids = torch.tensor([[5, 17, 42, 8, 99]])
    base = tiny_neo(ids).logits  # a freshly loaded base model
    with torch.no_grad():
        with trainer.optional_peft_ctx():
            reference_logits = policy.pretrained_model(ids).logits
        policy_logits = policy.pretrained_model(ids).logits
    torch.testing.assert_close(reference_logits, base, rtol=0, atol=0)
    assert not torch.allclose(policy_logits, base, atol=1e-3)
    # every tensor the trainer's models hold is stored once: the base weights, the LoRA
    # weights and the value head, and nothing else
    storages = {}
    for model in (trainer.model, trainer.ref_model):
        for param in model.parameters() if model is not None else []:
            storages[param.untyped_storage().data_ptr()] = param.numel()
    base_params = sum(p.numel() for p in tiny_neo.parameters())
    adapter_params = sum(p.numel() for n, p in policy.named_parameters() if "lora_" in n)
    assert sum(storages.values()) == base_params + adapter_params + 16 + 1


def test_lora_merged_save_loads_as_a_plain_causal_lm(tiny_neo_dir, tiny_neo, lora, tmp_path):
    policy, _ = load_trainable(tiny_neo_dir, 4, CPU, seed=0, adapter=lora)
    with torch.no_grad():
        for name, param in policy.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)
        ids = torch.tensor([[5, 17, 42, 8, 99]])
        adapted = policy.pretrained_model(ids).logits
    model_to_save(policy).save_pretrained(tmp_path)
    assert not (tmp_path / "adapter_config.json").exists()
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert type(loaded) is type(tiny_neo)
    assert set(loaded.state_dict()) == set(tiny_neo.state_dict())  # no LoRA names left
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids).logits, adapted, rtol=1e-4, atol=1e-5)
        assert not torch.allclose(loaded(ids).logits, tiny_neo(ids).logits, atol=1e-3)


def test_without_an_adapter_the_saved_model_is_the_policy_s_own(tiny_neo_dir):
    policy, _ = load_trainable(tiny_neo_dir, 4, CPU, seed=0)
    assert model_to_save(policy) is policy.pretrained_model


@pytest.mark.parametrize("targets, says", [
    (["attn_proj"], "none of them found in the top 4 blocks"),
    (["q_proj", "c_attn", "wte"], "not all of them (c_attn, wte not) found in the top 4 blocks")])
def test_lora_target_modules_must_exist_in_the_blocks(tiny_neo_dir, lora, targets, says):
    with pytest.raises(DetoxError) as info:
        load_trainable(tiny_neo_dir, 4, CPU, seed=0,
                       adapter=dataclasses.replace(lora, target_modules=targets))
    message = str(info.value)
    assert message.startswith(f"params.yaml: adapter.target_modules={targets!r} is invalid")
    assert says in message and "\n" not in message


# --- deeper policies: gpt-neo-1.3B (24 blocks) and 2.7B (32 blocks) layouts ------------------

@pytest.mark.parametrize("blocks", [24, 32])
@pytest.mark.parametrize("adapted", [False, True])
def test_layers_counts_from_the_top_of_a_deeper_policy(make_tiny_neo, tmp_path, lora, blocks,
                                                       adapted):
    make_tiny_neo(num_layers=blocks,
                  attention_types=[[["global", "local"], blocks // 2]]).save_pretrained(tmp_path)
    policy, _ = load_trainable(tmp_path, 8, CPU, seed=0, adapter=lora if adapted else None)
    block = lora_block if adapted else block_of
    trained = {block(n) for n, p in policy.named_parameters() if p.requires_grad} - {None}
    assert trained == set(range(blocks - 8, blocks))
    with pytest.raises(DetoxError, match=f"between 1 and {blocks}"):
        load_trainable(tmp_path, blocks + 1, CPU, seed=0, adapter=lora if adapted else None)


# --- tokenizer, eval model, snapshot ---------------------------------------------------------

def test_load_tokenizer_pads_right_with_eos(tmp_path, corpus_texts):
    from detox.download.builtin.tiny_model import train_tokenizer

    tokenizer = train_tokenizer(corpus_texts[:50], vocab_size=300)
    tokenizer.pad_token = None  # like gpt-neo-125m's own tokenizer
    tokenizer.padding_side = "left"  # whatever the checkpoint says, TRL's forward pass needs right
    tokenizer.save_pretrained(tmp_path)
    loaded = load_tokenizer(tmp_path)
    assert loaded.padding_side == "right"
    assert loaded.pad_token == loaded.eos_token
    assert loaded.pad_token_id == loaded.eos_token_id
    batch = loaded(["a b c d", "a"], padding=True)["input_ids"]
    assert batch[1][-1] == loaded.pad_token_id and batch[1][0] != loaded.pad_token_id


def test_load_tokenizer_from_an_empty_folder_says_run_download(tmp_path):
    with pytest.raises(DetoxError, match="run its download stage"):
        load_tokenizer(tmp_path)


def test_require_context_names_both_params(make_tiny_neo):
    config = make_tiny_neo().config  # 64 positions
    require_context(config, 40, 24)
    with pytest.raises(DetoxError, match="prompt_max_tokens \\+ generation.max_new_tokens_to = 65"):
        require_context(config, 40, 25)


def test_load_causal_lm_is_in_eval_mode(tiny_neo_dir):
    model = load_causal_lm(tiny_neo_dir, CPU)
    assert not model.training
    assert next(model.parameters()).device.type == "cpu"
    assert next(model.parameters()).dtype == torch.float32
    assert model.config.num_hidden_layers == BLOCKS
