"""Grounding: the golden set of real (or reference) data and how it is mixed into training."""
