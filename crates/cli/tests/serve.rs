//! `modelmux serve` as a binary: it serves the tiny models on 127.0.0.1 (HTTP and gRPC) and
//! stops on SIGTERM, and the KServe manifest under `deploy/` only uses flags and ports the
//! command accepts.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

fn modelmux() -> Command {
    Command::new(env!("CARGO_BIN_EXE_modelmux"))
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn serve_help() -> String {
    let out = modelmux().args(["serve", "--help"]).output().expect("runs");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One HTTP/1.1 GET over a plain socket; returns the status line and the body.
fn get(address: &str, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(address).expect("connects");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .expect("sends");
    let mut reply = String::new();
    stream.read_to_string(&mut reply).expect("reads");
    let status = reply.lines().next().unwrap_or_default().to_owned();
    let body = reply
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn the_binary_serves_on_loopback_and_stops_on_sigterm() {
    let fixtures = std::env::var_os("MODELMUX_FIXTURES")
        .map_or_else(|| root().join("target/modelmux-fixtures"), PathBuf::from);
    let exports = fixtures.join("tiny/exports");
    assert!(
        exports.exists(),
        "{} is missing: run `cargo xtask fixtures`",
        exports.display()
    );
    let mut child = modelmux()
        .args(["serve", "--http-port", "0", "--grpc-port", "0", "--catalog"])
        .arg(root().join("tests/data/tiny-models.yaml"))
        .arg("--exports")
        .arg(&exports)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    stdout.read_line(&mut line).expect("the address line");
    let mut grpc_line = String::new();
    stdout
        .read_line(&mut grpc_line)
        .expect("the gRPC address line");
    let grpc_address = grpc_line
        .trim()
        .rsplit("grpc://")
        .next()
        .unwrap_or_default();
    assert!(
        grpc_address.starts_with("127.0.0.1:"),
        "gRPC binds loopback by default too: {grpc_line}"
    );
    // Something listens there (the gRPC suite in tests/it drives it with tritonclient).
    TcpStream::connect(grpc_address).expect("the gRPC port accepts connections");
    let address = line
        .trim()
        .rsplit("http://")
        .next()
        .expect("an address")
        .to_owned();
    assert!(
        address.starts_with("127.0.0.1:"),
        "binds loopback by default: {line}"
    );
    let (status, body) = get(&address, "/v2/health/ready");
    assert!(status.contains("200"), "{status}");
    assert!(body.contains("\"ready\":true"), "{body}");
    let (status, body) = get(&address, "/v2/models/tiny-bert");
    assert!(
        status.contains("200") && body.contains("embedding"),
        "{status} {body}"
    );
    let (status, _) = get(&address, "/v2/models/nope");
    assert!(status.contains("404"), "{status}");
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let exit = child.wait().expect("exits");
    let mut stderr = String::new();
    if let Some(mut err) = child.stderr.take() {
        let _ = err.read_to_string(&mut stderr);
    }
    assert!(
        exit.success(),
        "a clean exit on SIGTERM: {exit:?}\n{stderr}"
    );
}

#[test]
fn the_kserve_manifest_uses_only_flags_and_ports_serve_accepts() {
    let path = root().join("deploy/kserve/servingruntime.yaml");
    let text = std::fs::read_to_string(&path).expect("the manifest");
    let manifest: serde_yaml::Value = serde_yaml::from_str(&text).expect("valid YAML");
    assert_eq!(manifest["kind"].as_str(), Some("ServingRuntime"));
    assert_eq!(
        manifest["apiVersion"].as_str(),
        Some("serving.kserve.io/v1alpha1")
    );
    let spec = &manifest["spec"];
    assert_eq!(spec["multiModel"].as_bool(), Some(true));
    let protocols: Vec<&str> = spec["protocolVersions"]
        .as_sequence()
        .expect("protocolVersions")
        .iter()
        .filter_map(serde_yaml::Value::as_str)
        .collect();
    // What the server speaks: the OIP over REST and over gRPC.
    assert_eq!(protocols, ["v2", "grpc-v2"]);
    let container = &spec["containers"][0];
    assert_eq!(container["name"].as_str(), Some("kserve-container"));
    let args: Vec<&str> = container["args"]
        .as_sequence()
        .expect("args")
        .iter()
        .filter_map(serde_yaml::Value::as_str)
        .collect();
    assert_eq!(args.first(), Some(&"serve"));
    let help = serve_help();
    let mut http_port = None;
    let mut grpc_port = None;
    for arg in &args[1..] {
        let (flag, value) = arg.split_once('=').unwrap_or((arg, ""));
        assert!(
            help.contains(&format!("{flag} ")),
            "`{flag}` is not a `modelmux serve` flag:\n{help}"
        );
        match flag {
            "--http-port" => http_port = value.parse::<u64>().ok(),
            "--grpc-port" => grpc_port = value.parse::<u64>().ok(),
            "--control" => assert!(
                help.contains(&format!("{value}:")) || help.contains(value),
                "--control {value}"
            ),
            _ => {}
        }
    }
    assert!(
        args.contains(&"--control=external"),
        "a control plane decides"
    );
    let port_named = |name: &str| {
        container["ports"]
            .as_sequence()
            .expect("ports")
            .iter()
            .find(|p| p["name"].as_str() == Some(name))
            .and_then(|p| p["containerPort"].as_u64())
    };
    let port = port_named("http1");
    assert_eq!(port, http_port, "the HTTP container port is the one served");
    assert!(grpc_port.is_some(), "the manifest names the gRPC port");
    assert_eq!(
        port_named("h2c"),
        grpc_port,
        "the gRPC container port (h2c) is the one served"
    );
    assert_eq!(
        port,
        Some(8080),
        "KServe's model agent calls localhost:8080"
    );
    for probe in ["readinessProbe", "livenessProbe"] {
        assert_eq!(container[probe]["httpGet"]["port"].as_u64(), port);
    }
    assert_eq!(
        container["readinessProbe"]["httpGet"]["path"].as_str(),
        Some("/v2/health/ready")
    );
}
