"""Audio-visual clips (video containers with a sound track) for cross-modal models such as CAV-MAE."""
