//! Whole-system tests of axum-durable live in `tests/tests/`; this library holds their helpers.
