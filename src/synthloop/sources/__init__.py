"""Task sources: where the loop's problems and the judge of answers come from. The built-in skills, or
a user's dataset (train split, held-out eval split, categories) with a scorer. The loop asks a source
for its categories, its evaluation items and their scores, never for a skill directly."""
