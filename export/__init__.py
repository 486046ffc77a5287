"""ONNX export of trained policies, with the recurrent memory as explicit state."""
