//! `modelmux`: the ModelManager facade that applications depend on.
