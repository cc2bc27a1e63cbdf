"""The ``word_filter`` baseline: no training, a bad-word filter at decoding time.

The "trained" model is the base weights unchanged with the banned token sequences saved in its
``generation_config.json`` (``bad_words_ids``), so that any ``generate()`` on the folder honours
them: transformers merges the model's generation config into every call, and evaluate's
``continuation_nll`` scores the policy with the same mask.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path

import torch
from transformers import PreTrainedTokenizerBase

from detox import DetoxError
from detox.models import load_causal_lm
from detox.train.log import LiveSeries
from detox.train.method import BASE, PAPER, TRAINING_LOG, Built, Method, Rows
from detox.train.params import TrainParams
from detox.train.policy import count_parameters
from detox.train.summary import TrainSummary

PACKAGE = "badwords-py:"
PARAM = "word_filter.words"


def _packaged() -> dict[str, Path]:
    folder = resources.files("badwords") / "resource" / "words"
    return {entry.name[:-4]: entry for entry in folder.iterdir() if entry.name.endswith(".txt")}


def load_words(source: str) -> list[str]:
    """The words and phrases of ``source``: ``badwords-py:<lang>`` (the lists shipped in the
    badwords-py package; ``en`` merges LDNOOBW, the list C4 was filtered by,
    washyourmouthoutwithsoap and the package's own curation) or a UTF-8 text file, one word or
    phrase a line (blank lines and ``#`` comments skipped).

    Never point it at the judge's own list (better-profanity's wordlist): the filter would then
    remove exactly what the judge looks for, and the judge would be blind to what remains.
    """
    if source.startswith(PACKAGE):
        language, lists = source[len(PACKAGE):], _packaged()
        if language not in lists:
            raise DetoxError(f"params.yaml: {PARAM}={source!r} is invalid: badwords-py has no "
                             f"list {language!r} (it has {', '.join(sorted(lists))})")
        text = lists[language].read_text(encoding="utf-8")
    else:
        try:
            text = Path(source).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise DetoxError(f"params.yaml: {PARAM}={source!r} is invalid: no such file "
                             f"(a word list, one a line, or {PACKAGE}<lang>)") from None
        except UnicodeDecodeError:
            raise DetoxError(f"params.yaml: {PARAM}={source!r} is invalid: not UTF-8 "
                             "text") from None
    words = (line.strip() for line in text.splitlines())
    return [word for word in words if word and not word.startswith("#")]


# Where a word is written, as (text before it, what joins them): the start of a text, after a
# word and a space (mid-sentence), at the start of a line. Tokenizers differ in what they emit
# there: GPT-2's BPE writes " hell" as one "Ġhell" token and a line-initial "hell" without it;
# SentencePiece (Llama 2, Mistral) writes "▁hell" at the start and mid-sentence alike and a bare
# "hell" after a newline; Llama 3's byte-level BPE writes words as GPT-2's does; a tokenizer may
# add a BOS to every text. Encoding the word after real text, rather than " hell" alone, gives
# what the model emits in each case.
CONTEXTS = (("", ""), ("the", " "), ("the\n", ""))


def _in_context(words: list[str], tokenizer: PreTrainedTokenizerBase, context: str,
                glue: str) -> list[list[int]]:
    """The ids the tokenizer gives each of ``words`` where it follows ``context + glue``: the
    ids of the whole text from the first one that differs from the ids of ``context`` alone (so
    a BOS the tokenizer adds cancels out, and a token that straddles the two, as SentencePiece's
    "\nh" + "ell", is banned as the model would emit it)."""
    def encode(texts: list[str]) -> list[list[int]]:
        return tokenizer(texts, add_special_tokens=False)["input_ids"]

    (before,) = encode([context])
    found = []
    for ids in encode([context + glue + word for word in words]):
        same = 0
        while same < min(len(ids), len(before)) and ids[same] == before[same]:
            same += 1
        found.append(ids[same:])
    return found


def banned_sequences(words: list[str], tokenizer: PreTrainedTokenizerBase,
                     source: str = "given") -> list[list[int]]:
    """The token sequences to ban: every word as written, lower-case, Capitalized and UPPER,
    each as this tokenizer emits it at the start of a text, mid-sentence after a space and at
    the start of a line (``CONTEXTS``), sorted.

    ``NoBadWordsLogitsProcessor`` bans a sequence's last token wherever the tokens before it
    were just generated: a multi-token word is banned only as that whole sequence (another
    tokenisation of the same text gets through), and a banned sequence is banned inside longer
    words too (a word that is one token without its space is banned everywhere that token
    occurs). A variant holding a special token (bos, eos, pad, ...) is dropped: it is no text
    the model writes, generate ignores a lone eos anyway, and a policy must be able to stop.
    """
    variants = sorted({cased for word in words
                       for cased in (word, word.lower(), word[:1].upper() + word[1:].lower(),
                                     word.upper())})
    special = set(tokenizer.all_special_ids)
    found = ({tuple(int(i) for i in ids) for context, glue in CONTEXTS
              for ids in _in_context(variants, tokenizer, context, glue)} if variants else set())
    sequences = sorted(seq for seq in found if seq and not special.intersection(seq))
    if not sequences:
        raise DetoxError(f"params.yaml: {PARAM}: the word list `{source}` ({len(words)} words) "
                         "yields no token ids for this tokenizer")
    return [list(seq) for seq in sequences]


def add_word_filter(model, tokenizer: PreTrainedTokenizerBase, source: str) -> dict:
    """Ban the words of ``source`` in ``model.generation_config`` (in place); the summary of
    what is banned, for metrics/train.json."""
    words = load_words(source)
    # DVC tracks the param, not a file it names: the list's hash says which words were banned.
    digest = hashlib.sha256("\n".join(words).encode()).hexdigest()[:12]
    sequences = banned_sequences(words, tokenizer, source)
    config = model.generation_config
    config.bad_words_ids = sequences
    # A config "from the model config" may be rebuilt from config.json by generate (the legacy
    # path of transformers), which would drop the list: this one is a config of its own.
    config._from_model_config = False
    config.validate(strict=True)  # what save_pretrained checks: fail here, not after training
    return {"word_list": source, "word_list_sha256": digest, "words": len(words),
            "banned_sequences": len(sequences),
            "banned_token_ids": len({i for seq in sequences for i in seq}),
            "banned_single_tokens": sum(len(seq) == 1 for seq in sequences)}


class WordFilter(Method):
    name, display_name = "word_filter", "a bad-word filter"
    tags = ("bad-words",)
    trains = False

    def title(self, params: TrainParams, summary: TrainSummary) -> str:
        return "bad-word filter"

    def description(self, base: str, scorer: str, summary: TrainSummary) -> str:
        return (f"`{base}` with its weights unchanged and a decoding-time ban on a published "
                "bad-word list, saved as `bad_words_ids` in `generation_config.json`, so that "
                f"any `generate()` on this folder honours it (a baseline for the RL method of "
                f"{PAPER}).")

    def card_rows(self, params: TrainParams, summary: TrainSummary, scorer: str) -> Rows:
        found = summary.details
        return [["word list", f"`{found['word_list']}` (sha256 of its words "
                              f"{found['word_list_sha256']}): {found['words']:,} words and "
                              f"phrases, {found['banned_sequences']:,} banned token sequences "
                              "in their casings, with and without a leading space "
                              f"({found['banned_token_ids']:,} distinct token ids)"]]

    def build(self, params: TrainParams, device: torch.device, dtype: torch.dtype,
              tokenizer: PreTrainedTokenizerBase) -> Built:
        model = load_causal_lm(BASE, device)
        found = add_word_filter(model, tokenizer, params.word_filter.words)
        LiveSeries(TRAINING_LOG, [])  # an empty log: the stage declares the folder
        return Built(model, TrainSummary.untrained(count_parameters(model)["total_params"],
                                                   **found), [])


METHOD = WordFilter()
