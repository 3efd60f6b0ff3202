"""Prompt tasks: building a teacher request is kept apart from parsing its output."""
