"""Curation stages. Each is `run(records) -> records`: it adds a verdict to every record it sees,
with a reason on every rejection, and drops nothing (the loop routes rejects to `rejected/`)."""
