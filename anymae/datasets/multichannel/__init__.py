"""The multichannel modality's data: readers of its file formats, its `data.source` entries, synthetic test data."""
