"""Chapter 4's experiments on learning-rate schedules, one module per experiment. The reusable tools the chapter
teaches live beside the machinery at the top level: :mod:`gradlab.schedules`, :mod:`gradlab.plateau` and
:mod:`gradlab.lr_finder`."""
