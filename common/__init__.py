"""The bottom layer: plumbing every stage shares (settings validation, refusals, atomic writes, the Dask
runner and its sandbox). It imports no stage (see docs/ARCHITECTURE.md)."""
