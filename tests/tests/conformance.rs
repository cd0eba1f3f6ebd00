//! The conformance suite on each runtime: `conformance::tokio::step_02_worker`,
//! `conformance::smol::step_02_worker`, ... (see `onward_tests::suite`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

onward_tests::conformance_suite!(tokio, onward_tests::Tokio);
onward_tests::conformance_suite!(smol, onward_tests::Smol);
onward_tests::conformance_suite!(async_std, onward_tests::AsyncStd);
