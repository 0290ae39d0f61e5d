//! The gRPC side of `modelmux serve`: Open Inference Protocol GRPCInferenceService, driven by
//! `tritonclient[grpc]` and compared with in-process results.
