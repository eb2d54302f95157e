"""Labels stage: spatio-temporal statistics labels, curriculum scores and pacing, their storage and CLI."""
