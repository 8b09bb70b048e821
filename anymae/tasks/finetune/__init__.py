"""Fine-tuning: a classifier on a pretrained encoder (`classifier`) and the training run (`run`)."""
