"""Fine-tuning a tool-calling adapter: training data, model, trainer."""
