"""One module per task. Importing :mod:`kerahep.registry` and calling ``get_task`` loads them."""
