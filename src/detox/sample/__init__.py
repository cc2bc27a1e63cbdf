"""The sample stage: k scored continuations of the base policy per training prompt, drawn once,
from which the sft and dpo methods pick their targets and preference pairs."""
