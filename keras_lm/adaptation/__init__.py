"""Adapting a trained model to a task: fine-tuning, LoRA, classifier heads."""
