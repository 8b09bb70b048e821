"""Everything done with a model, written once for every modality, in folders by role.

- `train/`: the training loop (`engine.train`), one step's work (`steps`), the run's loader
  (`loader/`: data order, sources per step, shard streams, worker processes), lr schedules,
  optimizer groups, DDP/FSDP (`distributed`), checkpoints, logging, run configs, and MAE
  pretraining from a config (`pretrain`).
- `evaluate/`: frozen-feature extraction (`features`) and every probe on it: `knn`, `linear`
  (+ `lars`), `attentive`, `svm`, `prototypical`, `nodes` (graph node classification),
  `fewshot`, `channel_subsets`; `probe` runs the requested protocols.
- `finetune/`: the classifier on a pretrained encoder and end-to-end fine-tuning (`run`).
- `interop/`: importers and exporters of every reference's release format, chosen by the
  registered modality (`formats`), and `export`.
- `pictures/`: reconstruction grids, embedding plots, GIFs, and the `reconstruct` command.
- `commands/`: the remaining commands' implementations (`demo`, `info`, `stats`, `export`) and
  the one-line errors every command answers with (`errors`).
"""
