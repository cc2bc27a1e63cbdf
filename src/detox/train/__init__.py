"""The train stage: the policy with its shared-layer reference, the reward and the PPO loop."""
