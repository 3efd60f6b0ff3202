"""Human review: the decision log, the review queue and audit slice, agreement figures, the web app."""
