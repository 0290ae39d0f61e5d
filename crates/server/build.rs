//! Compiles the committed gRPC protocol files (proto/) with protox, in Rust, so building needs
//! no `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let files = protox::compile(["grpc_predict_v2.proto", "model_runtime.proto"], ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .compile_fds(files)?;
    Ok(())
}
