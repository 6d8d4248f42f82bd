"""Chapter 5's experiments on vanishing and exploding gradients, one module per experiment. The networks they
share are built by :mod:`gradlab.gradients.nets`; the diagnostics tool the chapter teaches, for the reader's own
networks, lives beside the machinery at the top level: :mod:`gradlab.diagnostics`."""
