"""Benchmarks, one module per question (run from the repository root; docs/benchmark.md):

- ``python -m detox.bench.versus_trl``: how fast is one PPO iteration (and evaluation) of the
  project's loop against TRL's toxicity example, on the same models, prompts and settings?
- ``python -m detox.bench.scale``: what throughput and GPU memory at gpt-neo-125m, 1.3B and 2.7B
  shapes, with and without LoRA, and what the parameter counts predict (``estimate``)?
- ``python -m detox.bench.profile_loop``: where does one iteration of the project's loop spend
  its time?
- ``python -m detox.bench.candidates``: does a speed-up candidate change what the loop learns,
  and does it pay?
"""
