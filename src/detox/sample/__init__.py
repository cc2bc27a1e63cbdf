"""The sample stage: k scored continuations of the base policy per training prompt, drawn once,
from which the methods that read samples pick their targets and preference pairs."""
