"""The evaluate stage: rollouts of both policies, their scores, metrics, report and plots."""
