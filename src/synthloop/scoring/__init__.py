"""Scoring a model's free-text answer against a task item: final-answer extraction and the scorers
(exact, numeric, math, choice, regex, code, judge). The loop evaluates the student with these, and
`synthloop audit --scorer` measures them on labelled rows."""
