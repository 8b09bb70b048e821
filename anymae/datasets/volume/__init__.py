"""The volume modality's data: readers of .npy / NIfTI volumes, its `data.source` entry, synthetic test volumes."""
