//! Input checks against a hand-written signature.

use ndarray::{Array, ArrayD, IxDyn};

use super::*;

fn info() -> ModelInfo {
    let t = |name: &str, element_type, shape: Vec<Dim>| TensorInfo {
        name: name.to_owned(),
        element_type,
        shape,
    };
    ModelInfo {
        path: PathBuf::from("test.onnx"),
        inputs: vec![
            t(
                "input_ids",
                ElementType::I64,
                vec![Dim::Symbolic("batch".into()), Dim::Symbolic("seq".into())],
            ),
            t(
                "attention_mask",
                ElementType::I64,
                vec![Dim::Symbolic("batch".into()), Dim::Symbolic("seq".into())],
            ),
            t(
                "pixels",
                ElementType::F32,
                vec![Dim::Dynamic, Dim::Fixed(3)],
            ),
        ],
        outputs: vec![],
        ir_version: 8,
        opset_imports: vec![],
        producer: String::new(),
        custom_metadata: BTreeMap::new(),
        weight_bytes: 0,
    }
}

fn ids(shape: &[usize]) -> ArrayD<i64> {
    ArrayD::zeros(IxDyn(shape))
}

fn good() -> Inputs {
    Inputs::new()
        .with("input_ids", ids(&[2, 5]))
        .with("attention_mask", ids(&[2, 5]))
        .with("pixels", Array::<f32, _>::zeros((7, 3)))
}

#[test]
fn matching_inputs_pass() {
    assert_eq!(info().check_inputs(&good()), Ok(()));
}

#[test]
fn unknown_name_suggests_the_nearest() {
    let inputs = good().with("atention_mask", ids(&[2, 5]));
    match info().check_inputs(&inputs) {
        Err(InputMismatch::Unknown {
            name, did_you_mean, ..
        }) => {
            assert_eq!(name, "atention_mask");
            assert_eq!(did_you_mean.as_deref(), Some("attention_mask"));
        }
        other => panic!("expected Unknown, got {other:?}"),
    }
}

#[test]
fn wrong_element_type_names_expected_and_actual() {
    let inputs = Inputs::new()
        .with("input_ids", Array::<i32, _>::zeros((2, 5)))
        .with("attention_mask", ids(&[2, 5]))
        .with("pixels", Array::<f32, _>::zeros((7, 3)));
    let err = info().check_inputs(&inputs).expect_err("i32 given for i64");
    assert_eq!(
        err.to_string(),
        "input `input_ids`: expected element type int64, got int32"
    );
}

#[test]
fn wrong_fixed_dimension_and_rank_are_shape_errors() {
    let inputs = Inputs::new()
        .with("input_ids", ids(&[2, 5]))
        .with("attention_mask", ids(&[2, 5]))
        .with("pixels", Array::<f32, _>::zeros((7, 4)));
    let err = info()
        .check_inputs(&inputs)
        .expect_err("3 channels expected");
    assert_eq!(
        err.to_string(),
        "input `pixels`: expected shape [?, 3], got [7, 4]"
    );
    let inputs = Inputs::new().with("input_ids", ids(&[2]));
    assert!(matches!(
        info().check_inputs(&inputs),
        Err(InputMismatch::Shape { .. })
    ));
}

#[test]
fn named_dimension_must_agree_across_inputs() {
    let inputs = Inputs::new()
        .with("input_ids", ids(&[2, 5]))
        .with("attention_mask", ids(&[2, 6]))
        .with("pixels", Array::<f32, _>::zeros((7, 3)));
    let err = info().check_inputs(&inputs).expect_err("seq differs");
    assert_eq!(
        err.to_string(),
        "dimension `seq` is 5 in input `input_ids` but 6 in input `attention_mask`"
    );
}

#[test]
fn missing_and_duplicate_inputs_are_named() {
    let inputs = Inputs::new()
        .with("input_ids", ids(&[2, 5]))
        .with("pixels", Array::<f32, _>::zeros((7, 3)));
    assert_eq!(
        info().check_inputs(&inputs),
        Err(InputMismatch::Missing {
            name: "attention_mask".into()
        })
    );
    let inputs = good().with("pixels", Array::<f32, _>::zeros((7, 3)));
    assert_eq!(
        info().check_inputs(&inputs),
        Err(InputMismatch::Duplicate {
            name: "pixels".into()
        })
    );
}
