"""One file per modality: tokenizer, target, head, positions, presets."""
