"""Training: optimizer, LR schedules, the compiled train step, checkpoints, callbacks and plots."""
