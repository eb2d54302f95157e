"""The CLI layer, above the four stages: pipelines.yaml assembly and validation (``commands.pipeline``) and
the click commands of each stage plus ``run`` (one command per paper). See docs/ARCHITECTURE.md."""
