//! `modelmux serve` driven by the `kserve` SDK's v2 REST client, compared with in-process results.
