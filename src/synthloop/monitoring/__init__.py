"""Collapse and diversity metrics watched every round."""
