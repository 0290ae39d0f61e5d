//! Integration suites for modelmux.
