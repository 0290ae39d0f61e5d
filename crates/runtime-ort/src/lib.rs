//! ONNX Runtime sessions: library discovery, execution providers, typed tensor I/O, session workers.
