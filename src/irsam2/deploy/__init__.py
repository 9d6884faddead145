"""Deployment: ONNX export of the frame model and an onnxruntime runner (see :mod:`irsam2.deploy.onnx`)."""
