"""Saving: `checkpoint` (safetensors checkpoints, load/save) and `files` (atomic writes, no unpickling)."""
