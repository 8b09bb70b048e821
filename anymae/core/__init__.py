"""The shared MAE core: masking, positions, encoder, decoder, losses, the model, the registry.

Knows no modality: modalities build on it, never the other way round.
"""
