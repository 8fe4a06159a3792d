//! The event wire contract (DESIGN.md §5): what goes on a stream, as every side must read it.
//!
//! - [`envelope`]: the JSON envelope every domain's event is published in, and the subject shape;
//! - [`ledger`]: the identity `<run>/<publisher>/<seq>` that ties an event to the publisher's
//!   ledger, carried in the `Nats-Msg-Id` and in the payload's `producer` (how it is written, the
//!   one function that reads it back);
//! - [`poison`]: the kinds of poison event ([`poison::PoisonKind`], also the dead-letter reason)
//!   and the `Aivo-Poison` header that marks an injected one.
//!
//! A leaf module: every layer may use it, and it names no other module of the crate. What it leaves
//! to others: making events and poison (`traffic/`), publishing them (`load/`), and checking an
//! event read off a stream and classifying it as poison (`consumers/envelope.rs`). Which domains
//! and streams exist, and which subjects each domain's generator emits, stay with the generators
//! (`traffic::Domain`).

pub mod envelope;
pub mod ledger;
pub mod poison;
