"""synthloop: synthetic training data for language models, with the loop closed."""

__version__ = "0.1.0"
