//! What each ONNX Runtime release accepts: the highest IR version and default-domain opset.

use serde::Serialize;

/// The newest IR version and `ai.onnx` opset a runtime loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct OnnxLimits {
    pub max_ir_version: i64,
    pub max_opset: i64,
}

/// Measured on the PyPI CPU wheels: an Identity model stamped with IR n / opset m, then a session
/// and a run. Microsoft's own table stops at 1.20, so these rows are measurements.
const TABLE: &[((u32, u32), OnnxLimits)] = &[
    (
        (1, 20),
        OnnxLimits {
            max_ir_version: 10,
            max_opset: 21,
        },
    ),
    (
        (1, 22),
        OnnxLimits {
            max_ir_version: 10,
            max_opset: 22,
        },
    ),
    (
        (1, 23),
        OnnxLimits {
            max_ir_version: 11,
            max_opset: 23,
        },
    ),
    (
        (1, 24),
        OnnxLimits {
            max_ir_version: 13,
            max_opset: 25,
        },
    ),
    (
        (1, 26),
        OnnxLimits {
            max_ir_version: 13,
            max_opset: 26,
        },
    ),
    (
        (1, 31),
        OnnxLimits {
            max_ir_version: 13,
            max_opset: 26,
        },
    ),
    (
        (1, 32),
        OnnxLimits {
            max_ir_version: 14,
            max_opset: 28,
        },
    ),
];

/// The limits of ONNX Runtime `version` (e.g. `"1.31.1"`): the row of the newest measured release
/// at or below it. `None` for a malformed version or one older than every row.
pub fn limits_for_runtime(version: &str) -> Option<OnnxLimits> {
    let mut parts = version.trim().split('.').map(str::parse::<u32>);
    let major = parts.next()?.ok()?;
    let minor = parts.next()?.ok()?;
    TABLE
        .iter()
        .rev()
        .find(|((ma, mi), _)| (*ma, *mi) <= (major, minor))
        .map(|(_, limits)| *limits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_lookup_takes_the_newest_row_at_or_below() {
        let l = limits_for_runtime("1.31.1").expect("known");
        assert_eq!((l.max_ir_version, l.max_opset), (13, 26));
        let l = limits_for_runtime("1.25.0").expect("known");
        assert_eq!((l.max_ir_version, l.max_opset), (13, 25));
        assert_eq!(limits_for_runtime("1.19.0"), None);
        assert_eq!(limits_for_runtime("garbage"), None);
    }
}
