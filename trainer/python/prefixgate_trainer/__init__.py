"""Prefixgate trainer: demo model fixtures, ONNX export, PEFT prefix-tuning jobs."""
