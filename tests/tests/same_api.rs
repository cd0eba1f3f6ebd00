//! Every runtime crate exports the same names for the same things, so an application
//! moves between runtimes by changing the crate name only.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

/// Fails to compile unless both arguments have the same type.
fn same<T>(_: std::marker::PhantomData<T>, _: std::marker::PhantomData<T>) {}

macro_rules! same_api {
    ($test:ident, $krate:ident) => {
        #[test]
        fn $test() {
            use std::marker::PhantomData as P;

            use onward_protocol as p;
            #[allow(unused_imports)]
            use $krate::{
                protocol, route, tcp, Address, Bytes, Context, Error, Identifier, Identity,
                Message, Node, NodeError, NodeOptions, Opaque, Result, Route, Routed,
                SecureChannel, Sender, TransportMessage, TrustAnyOf, TrustEveryone,
                TrustIdentifier, TrustPolicy, Worker,
            };

            same(P::<Address>, P::<p::Address>);
            same(P::<Opaque>, P::<p::api::Opaque>);
            same(P::<Bytes>, P::<p::api::Bytes>);
            same(P::<NodeError>, P::<p::node::NodeError>);
            same(P::<Sender>, P::<p::api::Sender>);
            same(P::<Context>, P::<p::api::Context>);
            same(P::<Error>, P::<p::api::Error>);
            same(P::<Identifier>, P::<p::identity::Identifier>);
            same(P::<Identity>, P::<p::identity::Identity>);
            same(P::<NodeOptions>, P::<p::api::NodeOptions>);
            same(P::<Result<()>>, P::<p::api::Result<()>>);
            same(P::<Route>, P::<p::Route>);
            same(P::<Routed<String>>, P::<p::api::Routed<String>>);
            same(P::<SecureChannel>, P::<p::api::SecureChannel>);
            same(P::<TransportMessage>, P::<p::TransportMessage>);
            same(P::<TrustAnyOf>, P::<p::trust::TrustAnyOf>);
            same(P::<TrustEveryone>, P::<p::trust::TrustEveryone>);
            same(P::<TrustIdentifier>, P::<p::trust::TrustIdentifier>);
            same(P::<protocol::Route>, P::<p::Route>);

            // Node is each crate's own, with start() and start_with(), and derefs to
            // the shared node API.
            let _start = Node::start;
            let _start_with = Node::start_with;
            let _stop = |node: &Node| {
                let api: &p::api::Node = node;
                let _ = api;
            };
            assert_eq!(route!["a", tcp("127.0.0.1:1")].len(), 2);
        }
    };
}

same_api!(tokio, onward_tokio);
same_api!(smol, onward_smol);
same_api!(async_std, onward_async_std);
