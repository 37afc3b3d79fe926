"""Media layer: probing, loudness, processing and tagging of audio files, path in and path out.

Imports stay lazy here on purpose: the isolation child imports this package first, before its limits apply.
"""
