"""Procedural, verifiable skills. Look skills up through `synthloop.registry.SKILLS`."""
