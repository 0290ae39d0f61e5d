//! Devices, the memory ledger, the footprint estimator, placement and the swap policy.
