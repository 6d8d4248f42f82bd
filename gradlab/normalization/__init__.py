"""Chapter 6: normalization. Batch, layer, group and instance normalization written from scratch
(:mod:`.scratch`, checked against ``torch.nn``), and the chapter's experiments on what they do in training."""
