//! onward's conformance suite, written once and run on every runtime, and the
//! helpers of the cross-runtime interop tests.
//!
//! [`suite`] holds each test as an `async fn` generic over a [`Harness`] (tokio, smol,
//! async-std); [`conformance_suite!`] makes a module of `#[test]`s from them for one
//! runtime. Every test talks over real loopback TCP on ports the system picks.
//!
//! ```text
//! cargo test -p onward-tests
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]
// This crate exists only to test: a failed expectation is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod adversarial;
pub mod broker;
pub mod harness;
pub mod inbox;
pub mod liveness;
pub mod portal;
pub mod redis_server;
pub mod relay;
pub mod service;
pub mod suite;
pub mod transports;
pub mod unix;
pub mod workers;

pub use harness::{AsyncStd, Harness, Smol, Tokio};

/// Instantiates the conformance suite for one runtime: `conformance_suite!(smol,
/// onward_tests::Smol)` makes a module `smol` with one `#[test]` per suite test, each
/// blocking on the runtime's executor with an overall time limit.
#[macro_export]
macro_rules! conformance_suite {
    ($module:ident, $harness:ty) => {
        mod $module {
            $crate::conformance_suite!(@tests suite, $harness;
                step_01_node,
                step_02_worker,
                step_03_routing,
                step_04_many_hops,
                step_05_secure_channel,
                step_06_secure_channel_many_hops,
                step_07_transport,
                step_08_many_transport_hops,
                step_09_secure_channel_many_transport_hops,
                step_10_identities,
                error_unknown_address,
                error_connection_refused,
                error_timeouts,
                error_middle_node_stopped,
                error_responder_stopped,
                pipelined_three_hops,
                pipelined_secure_channel_two_tcp_hops,
                slow_receiver_over_tcp_loses_nothing,
                bad_peers_disconnected,
                stop_during_a_handshake,
                stop_finishes_what_is_queued,
                stop_cuts_off_what_does_not_finish,
                concurrent_handshakes_at_one_listener,
                parallel_channels_from_one_node,
                close_secure_channel_ends_both_sides,
                limit_payload_over_tcp,
                limit_return_route_over_tcp,
                limit_channel_message,
                limit_frame_over_tcp,
                max_connections_makes_room_by_closing_the_idlest,
                connect_timeout,
                a_listener_that_never_accepts,
                send_timeout_on_a_congested_mailbox,
                a_remote_peer_cannot_put_a_channel_end_first,
                plain_frames_do_not_reach_a_worker_that_takes_channels_only,
                no_one_outside_a_node_can_speak_into_its_channel,
                a_worker_restricted_to_an_identity_refuses_other_channels,
                a_listener_restricts_where_its_channels_deliver,
                a_panicking_worker_fails_only_that_message,
                a_panicking_trust_policy_fails_only_that_handshake,
                a_silent_connection_is_closed_at_its_first_frame_deadline,
            );
            /// The liveness section (`onward_tests::liveness`).
            mod liveness {
                $crate::conformance_suite!(@tests liveness, $harness;
                    a_restarted_responder_is_found_within_two_seconds,
                    a_far_unknown_address_is_a_remote_error,
                    a_dead_next_hop_fails_a_handshake_at_once,
                    a_persistent_channel_survives_a_responder_restart,
                    dropping_the_last_handle_closes_a_channel,
                );
            }
            /// The service section (`onward_tests::service`).
            mod service {
                $crate::conformance_suite!(@tests service, $harness;
                    requests_from_concurrent_tasks_get_their_own_replies,
                    a_late_reply_is_not_the_next_requests_reply,
                    a_context_is_a_stream_of_messages,
                    stopping_a_server_loses_no_reply,
                    stop_worker_returns_after_shutdown,
                    a_channel_is_observable_and_its_close_fails_waiting_requests,
                    the_node_spawns_sleeps_and_times_out,
                    a_tracked_send_that_fails_later_names_itself,
                    the_verified_peer_travels_with_the_message,
                );
            }
            /// The transports section (`onward_tests::transports`).
            mod transports {
                $crate::conformance_suite!(@tests transports, $harness;
                    step_09_over_a_transport_of_the_application,
                    transports_are_added_once_and_listen_needs_one,
                    a_batch_larger_than_the_inbox_room_is_split,
                );
            }
            /// The relay section (`onward_tests::relay`).
            mod relay {
                $crate::conformance_suite!(@tests relay, $harness;
                    a_node_without_a_listener_is_reached_through_a_relay,
                    a_registration_comes_back_after_the_relay_restarts,
                    the_relay_reads_only_routes_and_ciphertext,
                );
            }
            /// The portal section (`onward_tests::portal`).
            mod portal {
                $crate::conformance_suite!(@tests portal, $harness;
                    a_download_crosses_a_secure_portal_through_a_middle_node,
                    many_sessions_at_once_all_arrive_intact,
                    a_client_that_does_not_read_stops_the_target,
                    a_failed_session_closes_the_client_by_name,
                    an_idle_session_ends_when_its_channel_goes,
                    an_outlet_answers_only_opens,
                    a_portal_over_plain_tcp_and_a_restarted_outlet,
                );
            }
            /// The broker section (`onward_tests::broker`): a real redis-server.
            mod broker {
                $crate::conformance_suite!(@tests broker, $harness;
                    a_secure_channel_crosses_redis_holding_no_plaintext,
                    a_route_through_tcp_then_redis,
                    a_send_through_a_redis_that_is_gone_fails_by_name,
                    a_full_inbox_slows_its_senders_and_loses_nothing,
                );
            }
            /// The adversarial section (`onward_tests::adversarial`).
            mod adversarial {
                $crate::conformance_suite!(@tests adversarial, $harness;
                    attack_connection_slots,
                    attack_half_sent_frames,
                    attack_hello_flood,
                );
            }
        }
    };
    (@tests $source:ident, $harness:ty; $($test:ident),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                $crate::harness::run::<$harness>(
                    ::std::time::Duration::from_secs(60),
                    $crate::$source::$test::<$harness>(),
                );
            }
        )*
    };
}
