"""The collapse lab: what happens to a model fed on its own output, generation after generation, under
each data strategy. `toy.py` holds the two settings with known answers (a Gaussian refitted on its own
samples; a linear regression refitted on its own labels)."""
