//! runtime-ort on real ONNX Runtime: runs, element types, signatures, typed errors, provider
//! fallback and concurrent callers, on the graphs `cargo xtask fixtures` builds.

use std::sync::Arc;

use half::f16;
use modelmux_runtime_ort::{
    Dim, ElementType, InputMismatch, Inputs, RuntimeError, SessionHandle, SessionSpec,
};
use modelmux_tests::{fixture, runtime};
use ndarray::{Array1, Array2, ArrayD, array};

fn load(name: &str) -> SessionHandle {
    runtime()
        .load(name, &fixture(&format!("{name}.onnx")), &SessionSpec::cpu())
        .unwrap_or_else(|e| panic!("loading {name}: {e}"))
}

#[test]
fn runs_and_reports_the_signature() {
    let add = load("add");
    let info = add.info();
    assert_eq!(info.ir_version, 8);
    assert_eq!(info.opset(), Some(18));
    assert_eq!(info.inputs.len(), 2);
    assert_eq!(info.inputs[0].name, "x");
    assert_eq!(info.inputs[0].element_type, ElementType::F32);
    assert_eq!(
        info.inputs[0].shape,
        vec![Dim::Symbolic("batch".into()), Dim::Fixed(4)]
    );
    assert_eq!(info.outputs[0].name, "sum");
    assert_eq!(info.outputs[0].shape_text(), "[batch, 4]");
    assert_eq!(
        info.custom_metadata
            .get("modelmux.family")
            .map(String::as_str),
        Some("test")
    );
    assert_eq!(info.producer, "modelmux-fixtures");

    let x = array![
        [1.0f32, 2.0, 3.0, 4.0],
        [5.0, 6.0, 7.0, 8.0],
        [0.5, 0.5, 0.5, 0.5]
    ];
    let y = Array2::<f32>::ones((3, 4));
    let outputs = add
        .run(Inputs::new().with("x", x.clone()).with("y", y))
        .expect("run");
    let sum = outputs.array::<f32>("sum").expect("f32 output");
    assert_eq!(sum.shape(), &[3, 4]);
    assert_eq!(sum, &(x + 1.0).into_dyn());
}

#[test]
fn every_exchanged_element_type_round_trips() {
    let types = load("types");
    let h = Array1::from(vec![f16::from_f32(1.5), f16::from_f32(-2.0)]);
    let outputs = types
        .run(
            Inputs::new()
                .with("h", h)
                .with("i", Array1::from(vec![i64::MAX / 4, -3]))
                .with("j", Array1::from(vec![7i32, -8]))
                .with("u", Array1::from(vec![0u8, 255]))
                .with("b", Array1::from(vec![true, false])),
        )
        .expect("run");
    let h = outputs.array::<f16>("h_out").expect("f16");
    assert_eq!(
        h.iter().map(|v| v.to_f32()).collect::<Vec<_>>(),
        vec![3.0, -4.0]
    );
    assert_eq!(
        outputs.array::<i64>("i_out").expect("i64").as_slice(),
        Some(&[i64::MAX / 2 - 1, -6][..])
    );
    assert_eq!(
        outputs.array::<i32>("j_out").expect("i32").as_slice(),
        Some(&[14, -16][..])
    );
    assert_eq!(
        outputs.array::<u8>("u_out").expect("u8").as_slice(),
        Some(&[0, 255][..])
    );
    assert_eq!(
        outputs.array::<bool>("b_out").expect("bool").as_slice(),
        Some(&[false, true][..])
    );
    // Asking for the wrong element type names the output and both types.
    let err = outputs.array::<f32>("b_out").expect_err("bool is not f32");
    assert_eq!(
        err.to_string(),
        "model types: output `b_out`: holds bool, not float32"
    );
}

#[test]
fn matches_the_numpy_reference() {
    let golden: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("matmul.golden.json")).expect("golden file"),
    )
    .expect("golden json");
    let matrix = |key: &str| -> Array2<f32> {
        let rows: Vec<Vec<f32>> = serde_json::from_value(golden[key].clone()).expect("matrix");
        let cols = rows[0].len();
        Array2::from_shape_vec((rows.len(), cols), rows.concat()).expect("rectangular")
    };
    let matmul = load("matmul");
    assert_eq!(matmul.info().weight_bytes, (64 * 64 + 64) * 4);
    let outputs = matmul
        .run(Inputs::new().with("x", matrix("x")))
        .expect("run");
    let y = outputs.array::<f32>("y").expect("y");
    let expected = matrix("y").into_dyn();
    let max_diff = y
        .iter()
        .zip(expected.iter())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(max_diff < 1e-5, "max abs difference {max_diff}");
}

#[test]
fn bad_inputs_are_typed_errors_naming_the_input() {
    let add = load("add");
    let ok = || Array2::<f32>::zeros((2, 4));
    let mismatch = |inputs: Inputs| match add.run(inputs) {
        Err(RuntimeError::Input { model, mismatch }) => {
            assert_eq!(model, "add");
            mismatch
        }
        other => panic!("expected an input error, got {other:?}"),
    };
    assert!(matches!(
        mismatch(Inputs::new().with("x", ok()).with("z", ok())),
        InputMismatch::Unknown { name, .. } if name == "z"
    ));
    assert_eq!(
        mismatch(
            Inputs::new()
                .with("x", ok())
                .with("y", Array2::<i64>::zeros((2, 4)))
        ),
        InputMismatch::ElementType {
            name: "y".into(),
            expected: ElementType::F32,
            actual: ElementType::I64
        }
    );
    assert_eq!(
        mismatch(
            Inputs::new()
                .with("x", ok())
                .with("y", Array2::<f32>::zeros((2, 5)))
        )
        .to_string(),
        "input `y`: expected shape [batch, 4], got [2, 5]"
    );
    assert!(matches!(
        mismatch(Inputs::new().with("x", ok()).with("y", Array2::<f32>::zeros((3, 4)))),
        InputMismatch::InconsistentDimension { symbol, .. } if symbol == "batch"
    ));
    assert_eq!(
        mismatch(Inputs::new().with("x", ok())),
        InputMismatch::Missing { name: "y".into() }
    );
    // The session is still usable after rejected requests.
    add.run(Inputs::new().with("x", ok()).with("y", ok()))
        .expect("still runs");
}

#[test]
fn models_newer_than_the_runtime_are_incompatible() {
    for (name, found) in [
        ("identity-ir14", "IR version 14"),
        ("identity-opset27", "ai.onnx opset 27"),
    ] {
        let err = runtime()
            .load(name, &fixture(&format!("{name}.onnx")), &SessionSpec::cpu())
            .expect_err("too new");
        match &err {
            RuntimeError::IncompatibleModel {
                found: f,
                max_ir_version,
                max_opset,
                ..
            } => {
                assert_eq!(f, found);
                assert_eq!((*max_ir_version, *max_opset), (13, 26));
            }
            other => panic!("expected IncompatibleModel, got {other:?}"),
        }
        assert!(err.to_string().contains(&format!("{name}.onnx")), "{err}");
    }
    runtime()
        .load("identity", &fixture("identity.onnx"), &SessionSpec::cpu())
        .expect("IR 8 loads");
}

#[test]
fn missing_and_corrupt_files_are_typed_errors() {
    let missing = runtime().load(
        "m",
        std::path::Path::new("/nonexistent/model.onnx"),
        &SessionSpec::cpu(),
    );
    assert!(
        matches!(&missing, Err(RuntimeError::ModelFile(_)))
            && missing
                .as_ref()
                .err()
                .is_some_and(|e| e.to_string().contains("/nonexistent/model.onnx")),
        "{missing:?}"
    );
    let dir = std::env::temp_dir().join(format!("modelmux-corrupt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let corrupt = dir.join("corrupt.onnx");
    std::fs::write(&corrupt, b"\x08\x08\x3a\xff\xff\xff\x0f not a model").expect("write");
    let err = runtime()
        .load("corrupt", &corrupt, &SessionSpec::cpu())
        .expect_err("corrupt");
    assert!(err.to_string().contains("corrupt.onnx"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn cpu_sessions_report_cpu_placement() {
    let matmul = load("matmul");
    let placement = matmul.placement();
    assert_eq!(placement.registered, vec!["CPUExecutionProvider"]);
    assert_eq!(placement.providers_used, vec!["CPUExecutionProvider"]);
    assert!(placement.fallbacks.is_empty());
    assert!(!placement.on_accelerator());
}

#[test]
fn cuda_without_a_gpu_is_unavailable_unless_fallback_is_allowed() {
    let path = fixture("add.onnx");
    match runtime().load("add", &path, &SessionSpec::cuda(0, false)) {
        Err(RuntimeError::ProviderUnavailable { provider, reason }) => {
            assert_eq!(provider, "CUDAExecutionProvider");
            assert!(!reason.is_empty());
        }
        // Where the CUDA build and a GPU are present, the session must really be on the GPU.
        Ok(handle) => assert!(
            handle.placement().on_accelerator(),
            "{:?}",
            handle.placement()
        ),
        Err(other) => panic!("expected ProviderUnavailable, got {other}"),
    }
    let handle = runtime()
        .load("add", &path, &SessionSpec::cuda(0, true))
        .expect("CPU fallback is allowed");
    if !handle.placement().on_accelerator() {
        assert_eq!(
            handle.placement().providers_used,
            vec!["CPUExecutionProvider"]
        );
        assert_eq!(
            handle.placement().fallbacks[0].provider,
            "CUDAExecutionProvider"
        );
    }
    let x = Array2::<f32>::ones((1, 4));
    let out = handle
        .run(Inputs::new().with("x", x.clone()).with("y", x))
        .expect("runs");
    assert_eq!(out.array::<f32>("sum").expect("sum").sum(), 8.0);
}

#[test]
fn many_concurrent_callers_share_one_handle() {
    let handle = load("matmul");
    let threads: Vec<_> = (0..16)
        .map(|t| {
            let handle = handle.clone();
            std::thread::spawn(move || {
                for i in 0..25 {
                    let rows = 1 + (t + i) % 4;
                    let x = ArrayD::from_elem(vec![rows, 64], (t as f32) / 16.0);
                    let out = handle.run(Inputs::new().with("x", x.clone())).expect("run");
                    let y = out.array::<f32>("y").expect("y");
                    assert_eq!(y.shape(), &[rows, 64]);
                    // Every row of a constant input gives the same output row.
                    let first = y.index_axis(ndarray::Axis(0), 0).to_owned();
                    for row in y.outer_iter() {
                        assert_eq!(row, first);
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("caller thread");
    }
    assert_eq!(handle.in_flight(), 0);
}

#[test]
fn async_callers_and_shutdown() {
    let handle = Arc::new(load("add"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("tokio");
    let sums: Vec<f32> = rt.block_on(async {
        let tasks: Vec<_> = (0..32)
            .map(|i| {
                let handle = Arc::clone(&handle);
                tokio::spawn(async move {
                    let x = Array2::<f32>::from_elem((1, 4), i as f32);
                    let out = handle
                        .run_async(Inputs::new().with("x", x.clone()).with("y", x))
                        .await
                        .expect("run");
                    out.array::<f32>("sum").expect("sum")[[0, 0]]
                })
            })
            .collect();
        let mut sums = Vec::new();
        for task in tasks {
            sums.push(task.await.expect("task"));
        }
        sums
    });
    assert_eq!(sums, (0..32).map(|i| 2.0 * i as f32).collect::<Vec<_>>());
    handle.shutdown();
    let x = Array2::<f32>::zeros((1, 4));
    assert!(matches!(
        handle.run(Inputs::new().with("x", x.clone()).with("y", x)),
        Err(RuntimeError::SessionClosed { model }) if model == "add"
    ));
}
