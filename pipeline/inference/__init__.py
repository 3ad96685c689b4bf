"""Using a trained model: predictions from images, with the preprocessing the model file (or ONNX file) states."""
