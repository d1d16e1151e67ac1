"""DreamBench data: subjects, robust image decoding, the official dataset (fetch, verify, load),
custom subjects, and prompt sets as versioned data files."""
