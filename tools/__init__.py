"""Developer tools that are not part of the pipeline: importable, tested, never in an image."""
