"""Plot functions of the book: ``plot_x(result, ax=None) -> Axes``, one module per topic."""
