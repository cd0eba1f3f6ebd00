//! Channel establishment in memory, sans-IO, both sides in one thread:
//! - secure channels per second with identities and trust checks, against the crypto
//!   floor computed from the primitive costs measured in the same run;
//! - the plain Noise XX handshake, ours against `snow`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Instant;

use onward_bench::{keep, measure_time, rate, Figure, Report};
use onward_protocol::channel::{ChannelConfig, ChannelEnd};
use onward_protocol::identity::Identity;
use onward_protocol::noise::{CipherSuite, HandshakeState, StaticKeypair};
use onward_protocol::random::{RandomSource, SystemRandom};
use onward_protocol::trust::{TrustEveryone, TrustPolicy};
use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};
use x25519_dalek::{PublicKey, StaticSecret};

const BENCH: &str = "establish";

fn channel_pair(
    config: &ChannelConfig,
    a: &Arc<Identity>,
    b: &Arc<Identity>,
    trust: &Arc<dyn TrustPolicy>,
    rng: &mut SystemRandom,
) {
    let now = Instant::now();
    let mut i = ChannelEnd::initiator(config, a.clone(), trust.clone(), rng, now).unwrap();
    let hello = i.poll_transmit().unwrap();
    let mut r = ChannelEnd::responder(config, b, trust.clone(), rng, &hello, now).unwrap();
    i.handle_record(&r.poll_transmit().unwrap(), now).unwrap();
    r.handle_record(&i.poll_transmit().unwrap(), now).unwrap();
    i.handle_record(&r.poll_transmit().unwrap(), now).unwrap();
    assert!(i.is_established() && r.is_established());
    keep((i, r));
}

fn noise_ours(suite: CipherSuite, si: &StaticKeypair, sr: &StaticKeypair, rng: &mut SystemRandom) {
    let mut i = HandshakeState::initiator(suite, b"bench", *si.private(), rng).unwrap();
    let mut r = HandshakeState::responder(suite, b"bench", *sr.private(), rng).unwrap();
    let (mut m, mut p) = ([0u8; 256], [0u8; 256]);
    let n = i.write_message(&[], &mut m).unwrap();
    r.read_message(&m[..n], &mut p).unwrap();
    let n = r.write_message(&[], &mut m).unwrap();
    i.read_message(&m[..n], &mut p).unwrap();
    let n = i.write_message(&[], &mut m).unwrap();
    r.read_message(&m[..n], &mut p).unwrap();
    keep((i.into_transport().unwrap(), r.into_transport().unwrap()));
}

fn noise_snow(params: &snow::params::NoiseParams, si: &[u8; 32], sr: &[u8; 32]) {
    let mut i = snow::Builder::new(params.clone())
        .prologue(b"bench")
        .local_private_key(si)
        .build_initiator()
        .unwrap();
    let mut r = snow::Builder::new(params.clone())
        .prologue(b"bench")
        .local_private_key(sr)
        .build_responder()
        .unwrap();
    let (mut m, mut p) = ([0u8; 256], [0u8; 256]);
    let n = i.write_message(&[], &mut m).unwrap();
    r.read_message(&m[..n], &mut p).unwrap();
    let n = r.write_message(&[], &mut m).unwrap();
    i.read_message(&m[..n], &mut p).unwrap();
    let n = i.write_message(&[], &mut m).unwrap();
    r.read_message(&m[..n], &mut p).unwrap();
    keep((
        i.into_transport_mode().unwrap(),
        r.into_transport_mode().unwrap(),
    ));
}

fn main() {
    let time = measure_time();
    let mut report = Report::default();
    let mut rng = SystemRandom::new();

    // Primitive costs, in operations per second.
    let mut seed = [0u8; 32];
    rng.fill(&mut seed).unwrap();
    let secret = StaticSecret::from(seed);
    let peer = PublicKey::from(&StaticSecret::from([7u8; 32]));
    let dh = rate(time, || {
        keep(secret.diffie_hellman(keep(&peer)));
    });
    let keygen = rate(time, || {
        let mut s = [0u8; 32];
        rng.fill(&mut s).unwrap();
        keep(PublicKey::from(&StaticSecret::from(s)));
    });
    let signer = Ed25519KeyPair::from_seed_unchecked(&seed).unwrap();
    let message = [0x55u8; 104];
    let signature = signer.sign(&message);
    let public = UnparsedPublicKey::new(&ED25519, signer.public_key().as_ref().to_vec());
    let sign = rate(time, || {
        keep(signer.sign(keep(&message)));
    });
    let verify = rate(time, || {
        public.verify(keep(&message), signature.as_ref()).unwrap();
    });
    // A channel handshake needs, across both sides: four X25519 key generations (a
    // fresh static and an ephemeral key each), six X25519 agreements (ee, es, se on
    // each side), two Ed25519 signatures and two verifications.
    let floor_seconds = 4.0 / keygen + 6.0 / dh + 2.0 / sign + 2.0 / verify;
    let floor = 1.0 / floor_seconds;
    println!("primitives per second: x25519 agreement {dh:.0}, x25519 keygen {keygen:.0}, ed25519 sign {sign:.0}, verify {verify:.0}; floor {floor:.0} channels/s");

    let trust: Arc<dyn TrustPolicy> = Arc::new(TrustEveryone);
    let alice = Arc::new(Identity::generate().unwrap());
    let bob = Arc::new(Identity::generate().unwrap());
    for suite in CipherSuite::ALL {
        let config = ChannelConfig {
            suite,
            ..ChannelConfig::default()
        };
        let channels = rate(time, || {
            channel_pair(&config, &alice, &bob, &trust, &mut rng)
        });
        report.add(Figure {
            bench: BENCH,
            name: format!("secure channels ({suite})"),
            value: channels,
            unit: "chan/s",
            peer: "crypto floor".into(),
            peer_value: floor,
            target: Some(0.9),
            lower_is_better: false,
        });
    }

    // Plain XX with long-term static keys, as snow is used.
    let si = StaticKeypair::generate(&mut rng).unwrap();
    let sr = StaticKeypair::generate(&mut rng).unwrap();
    for suite in CipherSuite::ALL {
        let ours = rate(time, || noise_ours(suite, &si, &sr, &mut rng));
        let params: snow::params::NoiseParams = suite.protocol_name().parse().unwrap();
        let theirs = rate(time, || noise_snow(&params, si.private(), sr.private()));
        report.add(Figure {
            bench: BENCH,
            name: format!("Noise XX handshakes ({suite})"),
            value: ours,
            unit: "hs/s",
            peer: "snow 0.9".into(),
            peer_value: theirs,
            target: Some(1.0),
            lower_is_better: false,
        });
    }
    report.print_table();
}
