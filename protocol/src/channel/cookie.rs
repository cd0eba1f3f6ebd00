//! Cookies: how a listener under load makes an initiator prove that it receives on
//! its return route before the listener spends Diffie-Hellman and a signature on its
//! hello (docs/PROTOCOL.md, "Cookies").
//!
//! A [`CookieJar`] belongs to a listening node. Under load, the listener answers a
//! hello with a cookie reply ([`CookieJar::reply`]) instead of a response: 49 bytes,
//! one HMAC, no state kept. The initiator sends its hello again with the cookie
//! appended; the listener checks it ([`CookieJar::check`]) and only then answers as
//! usual. A cookie is a MAC, under a secret that changes every two minutes, of the
//! listener's address, the hello's return route as it arrived and the hello's
//! ephemeral key: it is good only for that hello, from that route, for at most four
//! minutes.
//!
//! Unlike WireGuard's handshake, the initiator of a Noise XX handshake does not know
//! the responder's static key beforehand, so there is no counterpart of WireGuard's
//! `mac1` (a MAC under the responder's public key): any hello is answered, with a
//! cookie when under load. The return route is what the cookie proves.

use std::time::{Duration, Instant};

use ring::hmac;
use zeroize::Zeroizing;

use crate::random::{RandomError, RandomSource};
use crate::routing::{Address, Route};

pub(crate) use super::wire::HELLO_LEN;
use super::wire::{KIND_COOKIE, KIND_HELLO};

/// Bytes of a cookie: a whole HMAC-SHA256 tag.
pub const COOKIE_LEN: usize = 32;

/// Bytes of the hello's ephemeral key a cookie reply echoes.
pub const ECHO_LEN: usize = 16;

/// Bytes of a cookie reply record: kind, echo, cookie.
pub const COOKIE_REPLY_LEN: usize = 1 + ECHO_LEN + COOKIE_LEN;

/// Bytes of a hello that carries a cookie.
pub const HELLO_WITH_COOKIE_LEN: usize = HELLO_LEN + COOKIE_LEN;

/// How long one secret makes cookies; a cookie is accepted under the secret that made
/// it and the next one, so for at most twice this.
pub const COOKIE_SECRET_LIFETIME: Duration = Duration::from_secs(120);

/// Domain separation of the cookie MAC.
const COOKIE_DOMAIN: &[u8] = b"onward/secure-channel/v1/cookie";

/// A hello record split into the hello proper (34 bytes) and its cookie, if any.
/// `None` if the record is not a hello of either length.
pub fn split_hello(record: &[u8]) -> Option<(&[u8], Option<&[u8]>)> {
    if record.first() != Some(&KIND_HELLO) {
        return None;
    }
    match record.len() {
        HELLO_LEN => Some((record, None)),
        HELLO_WITH_COOKIE_LEN => {
            let (hello, cookie) = record.split_at(HELLO_LEN);
            Some((hello, Some(cookie)))
        }
        _ => None,
    }
}

/// The ephemeral key bytes of a hello (after its kind and suite code).
fn ephemeral(hello: &[u8]) -> &[u8] {
    hello.get(2..HELLO_LEN).unwrap_or_default()
}

/// The secrets a listening node makes and checks cookies with.
pub struct CookieJar {
    /// The secret in use and when it began.
    current: Option<(Zeroizing<[u8; 32]>, Instant)>,
    /// The one before it, and when it began.
    previous: Option<(Zeroizing<[u8; 32]>, Instant)>,
}

impl std::fmt::Debug for CookieJar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CookieJar").finish_non_exhaustive()
    }
}

impl Default for CookieJar {
    fn default() -> Self {
        Self::new()
    }
}

impl CookieJar {
    /// A jar with no secret yet: the first cookie it makes draws one.
    pub fn new() -> Self {
        Self {
            current: None,
            previous: None,
        }
    }

    /// Makes the cookie reply record for `hello` (with or without a cookie), received
    /// at `listener` with `return_route` as it arrived.
    ///
    /// # Errors
    ///
    /// [`RandomError`] if a new secret was due and the random source failed.
    pub fn reply(
        &mut self,
        listener: &Address,
        return_route: &Route,
        hello: &[u8],
        rng: &mut dyn RandomSource,
        now: Instant,
    ) -> Result<Vec<u8>, RandomError> {
        let secret = self.secret(rng, now)?;
        let e = ephemeral(hello);
        let key = hmac::Key::new(hmac::HMAC_SHA256, &*secret);
        let cookie = hmac::sign(&key, &mac_input(listener, return_route, e));
        let mut record = Vec::with_capacity(COOKIE_REPLY_LEN);
        record.push(KIND_COOKIE);
        record.extend_from_slice(e.get(..ECHO_LEN).unwrap_or_default());
        record.extend_from_slice(cookie.as_ref());
        Ok(record)
    }

    /// Whether `cookie` is one this jar made, within its lifetime, for `hello` at
    /// `listener` from `return_route`.
    pub fn check(
        &self,
        listener: &Address,
        return_route: &Route,
        hello: &[u8],
        cookie: &[u8],
        now: Instant,
    ) -> bool {
        let e = ephemeral(hello);
        let input = mac_input(listener, return_route, e);
        // A secret's cookies are good for two lifetimes from when it began.
        let live = |(_, since): &&(Zeroizing<[u8; 32]>, Instant)| {
            now.saturating_duration_since(*since) < 2 * COOKIE_SECRET_LIFETIME
        };
        let secrets = [self.current.as_ref(), self.previous.as_ref()];
        secrets
            .into_iter()
            .flatten()
            .filter(live)
            .any(|(secret, _)| {
                let key = hmac::Key::new(hmac::HMAC_SHA256, &**secret);
                // ring compares the tags in constant time.
                hmac::verify(&key, &input, cookie).is_ok()
            })
    }

    /// The secret to make cookies with now, drawing a new one when the current one is
    /// a lifetime old.
    fn secret(
        &mut self,
        rng: &mut dyn RandomSource,
        now: Instant,
    ) -> Result<Zeroizing<[u8; 32]>, RandomError> {
        let due = self.current.as_ref().is_none_or(|(_, since)| {
            now.saturating_duration_since(*since) >= COOKIE_SECRET_LIFETIME
        });
        if due {
            let mut fresh = Zeroizing::new([0u8; 32]);
            rng.fill(&mut *fresh)?;
            self.previous = self.current.take();
            self.current = Some((fresh, now));
        }
        Ok(self
            .current
            .as_ref()
            .map(|(secret, _)| secret.clone())
            .unwrap_or_default())
    }
}

/// What a cookie authenticates: the domain, the listener's address, the return route's
/// addresses, then the ephemeral key `e`.
fn mac_input(listener: &Address, return_route: &Route, e: &[u8]) -> Vec<u8> {
    let mut input = Vec::with_capacity(COOKIE_DOMAIN.len() + 64 * (1 + return_route.len()));
    input.extend_from_slice(COOKIE_DOMAIN);
    for a in std::iter::once(listener).chain(return_route.iter()) {
        // Type, length, value: unambiguous for any sequence of addresses (whose
        // values are at most 255 bytes).
        input.push(a.transport().0);
        input.push(u8::try_from(a.value().len()).unwrap_or(u8::MAX));
        input.extend_from_slice(a.value());
    }
    input.push(0xff);
    input.extend_from_slice(e);
    input
}

/// Reads a cookie reply record: its echo and cookie. `None` if it is not one.
pub(crate) fn parse_reply(record: &[u8]) -> Option<(&[u8], &[u8])> {
    if record.first() != Some(&KIND_COOKIE) || record.len() != COOKIE_REPLY_LEN {
        return None;
    }
    let body = record.get(1..)?;
    Some(body.split_at(ECHO_LEN))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::SeededRandom;
    use crate::route;

    fn hello(seed: u8) -> Vec<u8> {
        let mut h = vec![seed; HELLO_LEN];
        h[0] = KIND_HELLO;
        h[1] = 1;
        h
    }

    #[test]
    fn a_cookie_is_good_for_its_hello_route_and_listener_only() {
        let mut rng = SeededRandom::new(1);
        let mut jar = CookieJar::new();
        let now = Instant::now();
        let l = Address::local("listener");
        let r = route!["alias", "initiator"];
        let reply = jar.reply(&l, &r, &hello(7), &mut rng, now).unwrap();
        assert_eq!(reply.len(), COOKIE_REPLY_LEN);
        let (echo, cookie) = parse_reply(&reply).unwrap();
        assert_eq!(echo, &hello(7)[2..2 + ECHO_LEN]);
        assert!(jar.check(&l, &r, &hello(7), cookie, now));
        assert!(!jar.check(&l, &r, &hello(8), cookie, now), "another hello");
        assert!(!jar.check(&l, &route!["other", "initiator"], &hello(7), cookie, now));
        assert!(!jar.check(&Address::local("l2"), &r, &hello(7), cookie, now));
        let mut flipped = cookie.to_vec();
        flipped[3] ^= 1;
        assert!(!jar.check(&l, &r, &hello(7), &flipped, now));
        assert!(
            !jar.check(&l, &r, &hello(7), &cookie[..31], now),
            "truncated"
        );
    }

    #[test]
    fn a_cookie_lasts_one_to_two_secret_lifetimes() {
        let mut rng = SeededRandom::new(2);
        let mut jar = CookieJar::new();
        let t0 = Instant::now();
        let l = Address::local("l");
        let r = route!["a"];
        let reply = jar.reply(&l, &r, &hello(1), &mut rng, t0).unwrap();
        let cookie = parse_reply(&reply).unwrap().1.to_vec();
        let later = t0 + COOKIE_SECRET_LIFETIME + Duration::from_secs(1);
        assert!(
            jar.check(&l, &r, &hello(1), &cookie, later),
            "no new secret yet"
        );
        // A new secret is drawn: the old one still counts for a lifetime.
        let _ = jar.reply(&l, &r, &hello(2), &mut rng, later).unwrap();
        assert!(jar.check(&l, &r, &hello(1), &cookie, later));
        let much_later = later + COOKIE_SECRET_LIFETIME;
        assert!(!jar.check(&l, &r, &hello(1), &cookie, much_later));
        // A jar that made nothing for long accepts none of its old cookies.
        let mut idle = CookieJar::new();
        let reply = idle.reply(&l, &r, &hello(1), &mut rng, t0).unwrap();
        let cookie = parse_reply(&reply).unwrap().1.to_vec();
        assert!(!idle.check(&l, &r, &hello(1), &cookie, t0 + 2 * COOKIE_SECRET_LIFETIME));
    }

    #[test]
    fn hellos_split_with_and_without_cookies() {
        let plain = hello(3);
        assert_eq!(split_hello(&plain), Some((&plain[..], None)));
        let mut with = plain.clone();
        with.extend_from_slice(&[9; COOKIE_LEN]);
        assert_eq!(
            split_hello(&with),
            Some((&plain[..], Some(&[9u8; COOKIE_LEN][..])))
        );
        assert_eq!(split_hello(&with[..40]), None);
        assert_eq!(split_hello(&[]), None);
        assert_eq!(split_hello(&[KIND_COOKIE; HELLO_LEN]), None);
        assert_eq!(parse_reply(&[KIND_COOKIE; 32]), None);
        assert_eq!(parse_reply(&[KIND_HELLO; COOKIE_REPLY_LEN]), None);
    }
}
