//! The smol examples run, print what the guide says, and follow the examples'
//! conventions (`--help`, a named bad argument, errors as sentences).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/examples.rs"]
mod examples;

#[test]
fn step_02_worker_echoes() {
    examples::step_02("02-worker-smol");
}

#[test]
fn step_09_secure_channel_through_a_middle_node() {
    examples::step_09("09-secure-channel-many-transport-hops-smol");
}

#[test]
fn examples_answer_help_and_name_bad_arguments() {
    for name in [
        "02-worker-smol",
        "09-secure-channel-many-transport-hops-smol",
        "kv-smol",
    ] {
        examples::help_and_bad_argument(name);
    }
}

#[test]
fn the_kv_service_runs() {
    examples::kv("kv-smol");
}
