"""Student training: a tokenizer and a tiny Llama-style model built here, and the training loop."""
