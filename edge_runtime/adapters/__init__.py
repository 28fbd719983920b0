"""The adapters shipped with the package: default.adapter teaches Gemma 3 270M FunctionGemma's
tool-calling format (tools/train_adapter.py trains it; edge_runtime.models merges it)."""
