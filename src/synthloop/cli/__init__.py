"""The `synthloop` command."""
