"""A package outside sifthinker that extends it at each of its extension points, one module per
extension, registered by its own metadata (``sif_toy_plugins-0.1.dist-info/entry_points.txt``):
a test puts this folder on ``sys.path`` (or ``PYTHONPATH``), as installing the package would.
Nothing in sifthinker names any of it."""
