"""Room 1, probes: what is asked. Items (a question or text with its ground truth), framings (the
user-stance templates, one registry) and the probe sets that turn rows into items and probes.

May import: nothing of lib but lib.paths. Every other room builds on this one.
"""
