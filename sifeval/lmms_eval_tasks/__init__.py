"""sifthinker's lmms-eval tasks: YAML files for ``--include_path`` (``sifeval lmms-eval-tasks``)."""
