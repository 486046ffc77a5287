"""dnc_policy: run an exported DNC (or LSTM, GRU) policy on the robot.

``dnc_policy.runtime`` is plain Python over numpy and onnxruntime (no torch, no rclpy):
it validates the ONNX file's contract and carries the policy's memory across ticks.
"""
