"""The training run's loader: data order (`sampler`), one source per step (`source_sampler`),
streams of shards (`stream`), and where the loader's worker processes run (`workers`).
`steps.run_batches` builds the run's one loader from these."""
