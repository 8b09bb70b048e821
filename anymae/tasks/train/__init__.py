"""Training: the loop, its steps, data order, schedules, optimizer, distribution, checkpoints, logs."""
