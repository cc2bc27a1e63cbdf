"""The ``given`` method: no training; a model someone else made (``model.given``: a hub id, a
folder, a GGUF, as ``model.policy`` takes) is evaluated against the base under this project's
protocol, as if it were the detoxified model. Evaluate compares the two token by token (the
same prompt ids, the KL and perplexity on the sampled ids), so the given model must read the
base's tokenizer: a fine-tune of ``model.policy``, such as a published detoxified checkpoint.
"""

from __future__ import annotations

import torch
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from detox import DetoxError
from detox.io import read_json
from detox.models import load_causal_lm
from detox.train.log import LiveSeries
from detox.train.method import BASE, TRAINING_LOG, Built, Method, Rows
from detox.train.params import TrainParams
from detox.train.policy import count_parameters
from detox.train.summary import TrainSummary

GIVEN = "data/models/given"  # download_given's snapshot of model.given


class Given(Method):
    name, display_name = "given", "a model given to evaluate (not trained here)"
    tags = ()
    trains = False

    def model_name(self, base: str, summary: TrainSummary) -> str:
        return f"{summary.details['given']}, evaluated against {base}"

    def title(self, params: TrainParams, summary: TrainSummary) -> str:
        return f"given: {summary.details['given']}"

    def description(self, base: str, scorer: str, summary: TrainSummary) -> str:
        given = summary.details["given"]
        return (f"`{given}`, not trained by this pipeline: given (`method: given`, "
                f"`model.given`) to be evaluated against its base `{base}` under the same "
                "protocol as the models this pipeline trains.")

    def card_rows(self, params: TrainParams, summary: TrainSummary, scorer: str) -> Rows:
        given = summary.details
        revision = f" @ {given['given_revision']}" if given.get("given_revision") else ""
        return [["given model", f"`{given['given']}`{revision}, its weights unchanged"]]

    def build(self, params: TrainParams, device: torch.device, dtype: torch.dtype,
              tokenizer: PreTrainedTokenizerBase) -> Built:
        source = read_json(f"{GIVEN}/source.json")
        if source["source"] is None:
            raise DetoxError("params.yaml: method=given evaluates the model named by "
                             "model.given, which is null: set it to a hub id or a folder, "
                             "and model.policy to its base (dvc exp run -S method=given -S "
                             "model.given=<id or folder> -S model.policy=<its base>)")
        if AutoTokenizer.from_pretrained(GIVEN).get_vocab() != tokenizer.get_vocab():
            base = read_json(f"{BASE}/source.json")["source"]
            raise DetoxError(f"params.yaml: model.given={source['source']!r} reads another "
                             f"vocabulary than the base policy {base!r} (model.policy): "
                             "evaluate compares the two on the same token ids, so give a "
                             "fine-tune of model.policy (or set model.policy to its base)")
        model = load_causal_lm(GIVEN, device)
        LiveSeries(TRAINING_LOG, [])  # an empty log: the stage declares the folder
        return Built(model, TrainSummary.untrained(
            count_parameters(model)["total_params"], given=source["source"],
            given_revision=source.get("revision")), [])


METHOD = Given()
