"""Per-skill evaluation on held-out probes, the weakness report and budget allocation."""
