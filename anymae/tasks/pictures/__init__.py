"""Pictures people look at: reconstruction grids and embedding plots (`figures`), clip GIFs
(`animation`), and reconstructions of a checkpoint on files (`reconstruct`)."""
