"""Tar shards for every modality: written from any folder source, streamed for training.

Layout (WebDataset's): plain POSIX tars whose members are grouped by key, `<key>.<suffix>`, the
key being the sample's index in the manifest order (`000000042`):

    train-000000.tar   000000000.jpg 000000000.cls 000000000.json 000000001.jpg ...
    train-000001.tar   ...
    manifest.json      per shard: count, bytes, labels, offsets; the source section; classes

so `tar tf`, `webdataset.WebDataset(...).decode("pil").to_tuple("jpg", "cls")` and any other tar
reader see the original files. The modules:

- `writer`: `write_shards` (what `anymae shard` runs): original bytes + label json + manifest;
- `manifest`: the manifest and `resolve_shards` (a folder, a brace pattern, URLs);
- `reader`: raw samples, sequentially (webdataset's tar iterators) or by offset;
- `adapters`, `decode`: a sample decodes AS A ONE-SAMPLE FOLDER with its modality's own source,
  so folder and shards give the same tensors for the same per-sample seed;
- `dataset`: `ShardDataset` (the dataset contract; random access and the training stream);
- `sources`: `data.source: shards`.

How training draws batches from the stream (shard order per epoch, ranks, loader workers, the
shuffle buffer, resume) is `anymae.tasks.train.loader.stream`.
"""
